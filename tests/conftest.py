"""Fixtures: every database test runs on a real SQLite file and on a real PostgreSQL.

PostgreSQL comes from TRADEFLOW_TEST_POSTGRES_URL (default: the project's machines'
server at 127.0.0.1:5432, database ``test``). Each test gets its own schema there,
migrated by Alembic like production. Where no server answers, only the PostgreSQL runs
are skipped, with the reason.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Connection, Engine, create_engine, text

from engine.storage import Database, make_engine, upgrade

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("TRADEFLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
_pg_reason: list[str | None] = []


def postgres_unavailable() -> str | None:
    if not _pg_reason:
        try:
            psycopg.connect(PG_URL, connect_timeout=3).close()
            _pg_reason.append(None)
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _pg_reason.append(f"PostgreSQL at {PG_URL} not reachable: {first}")
    return _pg_reason[0]


class FakeClock:
    """The only fake: time that tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.moment = start or datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> datetime:
        self.moment += timedelta(**delta)
        return self.moment


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating each time costs ~0.3 s)."""
    path = tmp_path_factory.mktemp("template") / "tradeflow.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()
    return path


def _sqlite(tmp_path: Path, template: Path) -> Iterator[Database]:
    path = tmp_path / "tradeflow.db"
    shutil.copy(template, path)
    db = Database(f"sqlite:///{path}")
    yield db
    db.dispose()


class _SchemaPool:
    """Migrated PostgreSQL schemas, emptied between tests and used again.

    Migrating a schema costs over a second of Alembic; emptying one costs a TRUNCATE. A
    schema goes back to the pool only if the test left its structure as migrated (the
    fingerprint: columns, indexes, constraints, functions, triggers and their states) and
    nothing holds a lock on it; otherwise it is dropped, as every schema was before.
    """

    FINGERPRINT = """
        SELECT md5(coalesce((SELECT string_agg(table_name || '.' || column_name || ':'
                    || data_type || ':' || is_nullable, ',' ORDER BY table_name, column_name)
                FROM information_schema.columns WHERE table_schema = :s), '')
            || coalesce((SELECT string_agg(replace(indexdef, :s || '.', ''), ',' ORDER BY indexdef)
                FROM pg_indexes WHERE schemaname = :s), '')
            || coalesce((SELECT string_agg(t.tgname::text || t.tgenabled::text, ','
                    ORDER BY t.tgname)
                FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = :s AND NOT t.tgisinternal), '')
            || coalesce((SELECT string_agg(c.conname::text
                    || replace(pg_get_constraintdef(c.oid), :s || '.', ''), ','
                    ORDER BY c.conname)
                FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
                WHERE n.nspname = :s), '')
            || coalesce((SELECT string_agg(p.proname::text, ',' ORDER BY p.proname)
                FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname = :s), ''))
    """

    def __init__(self) -> None:
        self.free: list[str] = []
        self.seeds: list[tuple[str, list[dict[str, object]]]] = []  # rows migrations put in
        self.fingerprint: str | None = None
        self.admin: Engine | None = None

    def _admin(self) -> Engine:
        if self.admin is None:
            self.admin = create_engine(make_engine(PG_URL).url, isolation_level="AUTOCOMMIT")
        return self.admin

    def take(self) -> str:
        if self.free:
            return self.free.pop()
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with self._admin().connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        db = Database(engine=_schema_engine(schema, pool_size=1))
        upgrade(db)
        db.dispose()
        if self.fingerprint is None:
            with self._admin().connect() as conn:
                self.fingerprint = self._fingerprint(conn, schema)
                for table in self._tables(conn, schema):
                    rows = conn.execute(text(f"SELECT * FROM {schema}.{table}")).mappings()
                    if found := [dict(row) for row in rows]:
                        self.seeds.append((table, found))
        return schema

    def give_back(self, schema: str) -> None:
        with self._admin().connect() as conn:
            try:
                with conn.begin():
                    conn.execute(text("SET LOCAL lock_timeout = '2s'"))
                    if self._fingerprint(conn, schema) != self.fingerprint:
                        raise LookupError("the test changed the schema")
                    tables = self._tables(conn, schema)
                    # the trail's triggers refuse TRUNCATE, even in a replica session
                    triggers = self._triggers(conn, schema)
                    for table, name, _ in triggers:
                        conn.execute(text(f"ALTER TABLE {schema}.{table} DISABLE TRIGGER {name}"))
                    listed = ", ".join(f"{schema}.{t}" for t in tables)
                    conn.execute(text(f"TRUNCATE {listed} RESTART IDENTITY CASCADE"))
                    for table, name, state in triggers:
                        how = {"O": "ENABLE", "A": "ENABLE ALWAYS", "R": "ENABLE REPLICA"}
                        conn.execute(
                            text(f"ALTER TABLE {schema}.{table} {how[state]} TRIGGER {name}")
                        )
                    for table, rows in self.seeds:
                        columns = ", ".join(rows[0])
                        values = ", ".join(f":{c}" for c in rows[0])
                        conn.execute(
                            text(f"INSERT INTO {schema}.{table} ({columns}) VALUES ({values})"),
                            rows,
                        )
            except Exception:  # changed, or something still holds it: drop it as before
                conn.rollback()
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
                return
        self.free.append(schema)

    def close(self) -> None:
        if self.admin is None:
            return
        with self.admin.connect() as conn:
            for schema in self.free:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        self.admin.dispose()

    def _fingerprint(self, conn: Connection, schema: str) -> str:
        return str(conn.execute(text(self.FINGERPRINT), {"s": schema}).scalar_one())

    @staticmethod
    def _triggers(conn: Connection, schema: str) -> list[tuple[str, str, str]]:
        rows = conn.execute(
            text(
                "SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger t "
                "JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :s AND NOT t.tgisinternal AND t.tgenabled <> 'D'"
            ),
            {"s": schema},
        )
        return [(str(table), str(name), str(state)) for table, name, state in rows]

    @staticmethod
    def _tables(conn: Connection, schema: str) -> list[str]:
        rows = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = :s ORDER BY tablename"),
            {"s": schema},
        )
        return [name for (name,) in rows]


_POOL = _SchemaPool()


def _schema_engine(schema: str, pool_size: int = 8) -> Engine:
    return create_engine(
        make_engine(PG_URL).url,
        connect_args={"options": f"-csearch_path={schema}"},
        pool_size=pool_size,
    )


@pytest.fixture(scope="session", autouse=True)
def _drop_pooled_schemas() -> Iterator[None]:
    yield
    _POOL.close()


def _postgres() -> Iterator[Database]:
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    schema = _POOL.take()
    db = Database(engine=_schema_engine(schema))
    try:
        yield db
    finally:
        db.dispose()
        _POOL.give_back(schema)


@contextmanager
def postgres_database(purpose: str) -> Iterator[str]:
    """A PostgreSQL database of its own, for tests that run real server or worker
    processes (they can't share a test's schema); its URL, dropped afterwards."""
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    name = f"tf_{purpose}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        yield from _sqlite(tmp_path, sqlite_template)
    else:
        yield from _postgres()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()

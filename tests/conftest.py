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
from sqlalchemy import create_engine, text

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


def _postgres() -> Iterator[Database]:
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(make_engine(PG_URL).url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = create_engine(
        make_engine(PG_URL).url,
        connect_args={"options": f"-csearch_path={schema}"},
        pool_size=8,
    )
    db = Database(engine=engine)
    upgrade(db)
    yield db
    db.dispose()
    with admin.connect() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


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

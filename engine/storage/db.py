"""Database connection: the URL, engine creation and the transaction boundary.

SQLite (WAL) is the embedded default, PostgreSQL the production store. Writers take the
lock up front on SQLite (``BEGIN IMMEDIATE``): a deferred transaction that reads and then
writes can deadlock against another writer, which busy_timeout cannot resolve.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from engine.storage.faults import CONNECT_WAIT, POOL_WAIT, Waits, WriterQueue
from engine.storage.prepared import Prepared

DEFAULT_URL = "sqlite:///var/tradeflow.db"
_WRITE = "tradeflow_write"
# With a background checkpointer a commit checkpoints only if the log passes this many
# pages (a stalled checkpointer must not let it grow without end); SQLite's default: 1000
_FALLBACK_AUTOCHECKPOINT = 10_000
_MMAP_BYTES = 256 * 1024 * 1024  # address space, not memory: the kernel's page cache backs it


def database_url() -> str:
    return os.environ.get("TRADEFLOW_DATABASE_URL", DEFAULT_URL)


def make_engine(url: str | None = None, waits: Waits | None = None) -> Engine:
    """Create an engine; SQLite files get WAL, a busy timeout and explicit BEGINs; every
    wait is bounded (faults.py)."""
    url = url or database_url()
    waits = waits or Waits.from_env()
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # LIFO: a thread gets back the connection it used last. An SQLite connection drops
        # its page cache when another connection has written since its last statement, so
        # reads on the connection that last wrote cost a fraction (docs/performance.md,
        # tests/engine/storage/test_db.py)
        in_memory = not path or path == ":memory:"  # one connection per thread already
        engine = create_engine(
            url,
            connect_args={"timeout": waits.lock, "check_same_thread": False},
            hide_parameters=True,  # an error's text goes to logs: not the data it carried
            **({} if in_memory else {"pool_use_lifo": True, "pool_timeout": POOL_WAIT}),
        )
        _configure_sqlite(engine, waits)
        return engine
    # no pre-ping: it is a round trip per checkout; recycle instead, and a connection that
    # died under a restart fails one request. No JIT: its compiling (most of a second) is for
    # long analytic queries; ours are short, and the planner's cost estimate of a KPI
    # query can reach its threshold and pay it on every run (bench/analytics.py)
    return create_engine(
        url, pool_recycle=1800, pool_size=10, max_overflow=10, pool_timeout=POOL_WAIT,
        hide_parameters=True,
        connect_args={
            "options": f"-c jit=off {waits.postgres_options()}",
            "connect_timeout": CONNECT_WAIT,
        },
    )  # fmt: skip


def lift_limits(conn: Connection) -> None:
    """No statement or idle limit for the rest of this transaction (PostgreSQL). The
    lock wait stays: a migration waiting without end behind a long transaction would
    queue every query on its table behind it; it fails instead, to be run again."""
    if conn.dialect.name == "postgresql":
        for setting in ("statement_timeout", "idle_in_transaction_session_timeout"):
            conn.exec_driver_sql(f"SET LOCAL {setting} = 0")


def _configure_sqlite(engine: Engine, waits: Waits) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={round(waits.lock * 1000)}")
        # pages read through a memory map, not a read() each: a unit of work's statements
        # read a score of pages (docs/performance.md)
        cur.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
        if engine in _checkpointers:
            cur.execute(f"PRAGMA wal_autocheckpoint={_FALLBACK_AUTOCHECKPOINT}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(_WRITE, False)
        # straight to the driver: every command pays for this line
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")


class Checkpointer:
    """Copies an SQLite file's write-ahead log into the database from a thread of its own.

    By default the commit that fills the log past 1000 pages does this, with two fsyncs,
    inside a request: a unit of work writes a few dozen pages (the instance, its task
    rows and their indexes, the audit rows), so every so many commands one waited for the
    disk (docs/performance.md). Here a passive checkpoint runs every ``interval``
    seconds instead, beside the requests (SQLite lets one writer go on meanwhile, and
    the driver releases the interpreter lock while it waits). Durability is SQLite's
    synchronous=NORMAL either way: a commit reaches the disk at the next checkpoint.
    """

    def __init__(self, path: str, interval: float) -> None:
        self.path = path
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        # Opened once the file has a log: a connection opened before the file was in WAL
        # checkpoints nothing, and setting WAL here as well raced the file's own connections
        # doing it ("database is locked": tests/engine/storage/test_db.py failed so, now and then)
        conn: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(self.interval):
                if conn is None:
                    if not os.path.exists(self.path + "-wal"):
                        continue
                    conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
                    conn.execute("PRAGMA synchronous=NORMAL")
                self.checkpoint(conn)
        finally:
            if conn is not None:
                conn.close()

    @staticmethod
    def checkpoint(conn: sqlite3.Connection) -> None:
        # busy or gone: the next round, or a commit past the fallback, does it
        with suppress(sqlite3.Error):
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


_checkpointers: WeakKeyDictionary[Engine, Checkpointer] = WeakKeyDictionary()


class Database:
    """An engine plus its two kinds of sessions: read (inbox, history) and write."""

    def __init__(
        self, url: str | None = None, engine: Engine | None = None, waits: Waits | None = None
    ) -> None:
        self.waits = waits or Waits.from_env()
        self.engine = engine or make_engine(url, self.waits)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        # whether two writers' transactions run side by side, each not seeing the
        # other's rows until commit (PostgreSQL); SQLite has one writer at a time
        self.writers_overlap = self.is_postgres
        # SQLite has one writer at a time: threads of one process queue here (faults.py)
        self._writer: AbstractContextManager[Any] = (
            nullcontext() if self.is_postgres else WriterQueue(self.waits.lock)
        )
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = self.engine.execution_options(**{_WRITE: True})
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)
        # PostgreSQL, per thread: a connection kept for ``first`` (every request's bearer lookup)
        self._lookups = threading.local()
        self._lookups_lock = threading.Lock()
        self._lookups_kept: list[Any] = []

    @contextmanager
    def unbounded(self) -> Iterator[Session]:
        """A transaction for an operator's long job (a migration, rebuilding the
        measures): no statement or idle limit (``lift_limits``)."""
        with self.transaction() as session:
            lift_limits(session.connection())
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commit on success, roll everything back on any error."""
        with self._writer, self._write() as session, session.begin():
            yield session

    @contextmanager
    def unit(self) -> Iterator[Session]:
        """The unit of work's transaction: a write connection, with a session on it for
        the ORM's occasional use. Half the bookkeeping of ``transaction()``, which the
        hot path feels; commits on success, rolls back on any error."""
        with self._writer, self._write_engine.connect() as conn, conn.begin():
            session = Session(bind=conn, expire_on_commit=False)
            try:
                yield session
                session.flush()
            finally:
                session.close()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    def probe(self, seconds: float = 2.0) -> None:
        """Whether the database answers, within about ``seconds``: raises the driver's
        error if not (``faults.fault_of`` names it). On a connection of its own, made
        for the probe: the pool may be what is stuck. It reads the schema's version (the
        file itself, on SQLite); it takes no lock, so a long command does not make the
        service look down."""
        ms = max(1, round(seconds * 1000))
        # the pool's own way of connecting (its settings, a test's search_path), not
        # the pool: SQLAlchemy's creator, a private name (prepared.py checks the version)
        conn = self.engine.pool._creator()  # type: ignore[call-arg]
        try:
            if self.is_postgres:
                conn.autocommit = True
                conn.execute(f"SET statement_timeout = {ms}")
                conn.execute(f"SET lock_timeout = {ms}")
                conn.autocommit = False
            else:
                conn.execute(f"PRAGMA busy_timeout = {ms}")
            cursor = conn.cursor()
            cursor.execute("SELECT version_num FROM alembic_version")
            cursor.fetchall()
            cursor.close()
            conn.rollback()
        finally:
            conn.close()

    def first(self, query: Prepared, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row of ``query``, straight through the driver, in autocommit (one
        SELECT reads one snapshot). Every API request runs one (the bearer token).

        SQLite: on a connection from the pool, which (LIFO) is the one this thread's units
        of work write on, whose page cache their commits leave valid. PostgreSQL: on a
        connection this thread keeps for such lookups; one from the pool cost a checkout
        and a check-in, and a BEGIN and a ROLLBACK: two round trips of the three. A
        connection that broke (a database restart) is replaced once."""
        dialect = self.engine.dialect
        if not self.is_postgres:
            raw = self.engine.raw_connection()
            try:
                rows = query.run_on(raw.driver_connection, dialect, params)
            finally:
                raw.close()
            return rows[0] if rows else None
        try:
            rows = query.run_on(self._lookup_connection(), dialect, params)
        except dialect.loaded_dbapi.Error:
            self._drop_lookup_connection()  # once more, on a new connection
            rows = query.run_on(self._lookup_connection(), dialect, params)
        return rows[0] if rows else None

    def _lookup_connection(self) -> Any:
        raw = getattr(self._lookups, "raw", None)
        if raw is None:
            raw = self.engine.raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            driver.autocommit = True
            self._lookups.raw = raw
            with self._lookups_lock:
                self._lookups_kept.append(raw)
        return raw.driver_connection

    def _drop_lookup_connection(self) -> None:
        raw = getattr(self._lookups, "raw", None)
        if raw is not None:
            self._lookups.raw = None
            with self._lookups_lock:
                self._lookups_kept.remove(raw)
            raw.invalidate()  # closed, not returned: the pool's connections are not autocommit

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A read transaction without a session: for a statement on every request."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def checkpoint_in_background(self, interval: float = 0.05) -> None:
        """For a long-running process on an SQLite file (the server, the timer worker):
        checkpoint the log from a thread (Checkpointer) rather than in commits. Call it
        before the first connection is made; nothing happens on PostgreSQL or in memory."""
        path = self.engine.url.database
        if self.engine.dialect.name != "sqlite" or not path or path == ":memory:":
            return
        if self.engine not in _checkpointers:
            checkpointer = Checkpointer(path, interval)
            _checkpointers[self.engine] = checkpointer
            checkpointer.start()

    def dispose(self) -> None:
        checkpointer = _checkpointers.pop(self.engine, None)
        if checkpointer is not None:
            checkpointer.stop()
        with self._lookups_lock:
            kept, self._lookups_kept = self._lookups_kept, []
        for raw in kept:
            raw.invalidate()
        self._lookups = threading.local()
        self.engine.dispose()

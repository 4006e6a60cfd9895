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

from sqlalchemy import Connection, Dialect, Engine, Select, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_URL = "sqlite:///var/tradeflow.db"
_WRITE = "tradeflow_write"
# With a background checkpointer a commit checkpoints only if the log passes this many
# pages (a stalled checkpointer must not let it grow without end); SQLite's default: 1000
_FALLBACK_AUTOCHECKPOINT = 10_000


def database_url() -> str:
    return os.environ.get("TRADEFLOW_DATABASE_URL", DEFAULT_URL)


def make_engine(url: str | None = None) -> Engine:
    """Create an engine; SQLite files get WAL, a busy timeout and explicit BEGINs."""
    url = url or database_url()
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _configure_sqlite(engine)
        return engine
    # no pre-ping: it is a round trip per checkout; recycle instead, and a connection that
    # died under a restart fails one request. No JIT: its compiling (some 0.4 s) is for
    # long analytic queries; ours are short, and the planner's cost estimate of a KPI
    # query can reach its threshold and pay it on every run (bench/analytics.py)
    return create_engine(
        url, pool_recycle=1800, pool_size=10, max_overflow=10,
        connect_args={"options": "-c jit=off"},
    )  # fmt: skip


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
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
    inside a request: a unit of work writes some 25 pages (the instance, its task rows
    and their indexes, the audit rows), so every 40th command waited 10-30 ms for the
    disk (bench/http_completions.py). Here a passive checkpoint runs every ``interval``
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
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # as every connection: it then sees the log
            conn.execute("PRAGMA synchronous=NORMAL")
            while not self._stop.wait(self.interval):
                self.checkpoint(conn)
        finally:
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


class DriverQuery:
    """A Core SELECT compiled once per dialect, for ``Database.first``: a statement every
    request runs (the bearer lookup) at a tenth of SQLAlchemy's execute. Its parameters
    must need no conversion (strings, integers), and its rows come back as the driver
    gives them (SQLite's booleans are 0 and 1)."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._compiled: dict[str, tuple[str, list[str] | None]] = {}

    def compiled(self, dialect: Dialect) -> tuple[str, list[str] | None]:
        """The SQL text, and the parameter names in order if the driver's are positional."""
        found = self._compiled.get(dialect.name)
        if found is None:
            # the statement's own parameters (a separator) rendered in as SQLAlchemy would
            # at execution; the caller's stay placeholders (the values here are stand-ins)
            binds = self.statement.compile(dialect=dialect).binds
            callers = {k: None for k, b in binds.items() if b.required}
            compiled = self.statement.params(callers).compile(
                dialect=dialect, compile_kwargs={"render_postcompile": True}
            )
            names = list(compiled.positiontup or ()) if compiled.positional else None
            found = self._compiled[dialect.name] = (compiled.string, names)
        return found


_checkpointers: WeakKeyDictionary[Engine, Checkpointer] = WeakKeyDictionary()


class Database:
    """An engine plus its two kinds of sessions: read (inbox, history) and write."""

    def __init__(self, url: str | None = None, engine: Engine | None = None) -> None:
        self.engine = engine or make_engine(url)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        # SQLite has one writer at a time. Threads of one process queue here, in order,
        # rather than in SQLite's busy handler, whose backoff sleeps gave 0.5 s tails.
        self._writer: AbstractContextManager[Any] = (
            nullcontext() if self.is_postgres else threading.Lock()
        )
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = self.engine.execution_options(**{_WRITE: True})
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)

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

    def first(self, query: DriverQuery, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row of ``query``, on a pooled connection, straight through the driver."""
        sql, names = query.compiled(self.engine.dialect)
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(sql, [params[n] for n in names] if names is not None else params)
            row = cursor.fetchone()
            cursor.close()
        finally:
            raw.close()  # back to the pool, which rolls back what the driver began
        return tuple(row) if row is not None else None

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
        self.engine.dispose()

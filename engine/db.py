"""Database connection: the URL, engine creation and the transaction boundary.

SQLite (WAL) is the embedded default, PostgreSQL the production store. Writers take the
lock up front on SQLite (``BEGIN IMMEDIATE``): a deferred transaction that reads and then
writes can deadlock against another writer, which busy_timeout cannot resolve.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_URL = "sqlite:///var/tradeflow.db"
_WRITE = "tradeflow_write"


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
    # died under a restart fails one request
    return create_engine(url, pool_recycle=1800, pool_size=10, max_overflow=10)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(_WRITE, False)
        # straight to the driver: every command pays for this line
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")


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

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A read transaction without a session: for a statement on every request."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()

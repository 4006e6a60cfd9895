"""When the database can't answer now, and how long anything waits for it.

Every wait is bounded: on PostgreSQL a lock is waited for at most ``lock_timeout``, a
statement runs at most ``statement_timeout``, and a transaction left idle (a process
stopped while it held one) is ended by the server after ``idle_in_transaction_session_
timeout``; a pool connection is waited for at most ``POOL_WAIT``, a new one at most
``CONNECT_WAIT``. On SQLite the writer
lock is waited for at most the busy timeout, by the threads of a process (``WriterQueue``)
and by other processes (SQLite's own ``busy_timeout``). Each is a setting (``Waits``).

What such a wait ends in, and what a lost connection or a cancelled statement raises, is
a **fault**: the same request later may well succeed. ``fault_of`` names it (busy,
cancelled, down), so the API answers 503 with ``Retry-After`` and the scheduler tries
again later; neither treats it as a diagram's error.
"""

from __future__ import annotations

import enum
import os
import sqlite3
import threading
from dataclasses import dataclass
from types import TracebackType

import psycopg
from sqlalchemy import exc as sa_exc

POOL_WAIT = 5.0  # seconds a request waits for a connection of the pool
CONNECT_WAIT = 5  # seconds a new connection to PostgreSQL may take


@dataclass(frozen=True)
class Waits:
    """How long anything waits on the database, in seconds (environment:
    ``TRADEFLOW_LOCK_TIMEOUT``, ``TRADEFLOW_STATEMENT_TIMEOUT``,
    ``TRADEFLOW_IDLE_TRANSACTION_TIMEOUT``)."""

    lock: float = 5.0  # a row, advisory or writer lock (SQLite: the busy timeout)
    statement: float = 60.0  # one statement (PostgreSQL)
    idle_transaction: float = 60.0  # a transaction nobody uses (PostgreSQL)

    @classmethod
    def from_env(cls) -> Waits:
        def seconds(name: str, default: float) -> float:
            raw = os.environ.get(name)
            if raw is None:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{name} is a number of seconds, not '{raw}'") from None
            if not 0 < value <= 3600:
                raise ValueError(f"{name} is between 0 and 3600 seconds, not {raw}")
            return value

        return cls(
            seconds("TRADEFLOW_LOCK_TIMEOUT", cls.lock),
            seconds("TRADEFLOW_STATEMENT_TIMEOUT", cls.statement),
            seconds("TRADEFLOW_IDLE_TRANSACTION_TIMEOUT", cls.idle_transaction),
        )

    def postgres_options(self) -> str:
        """The server settings of every connection, as libpq's ``options``."""
        ms = {
            "lock_timeout": self.lock,
            "statement_timeout": self.statement,
            "idle_in_transaction_session_timeout": self.idle_transaction,
        }
        return " ".join(f"-c {k}={round(v * 1000)}" for k, v in ms.items())


class WriterBusy(Exception):
    """A thread waited its whole busy timeout for the process's SQLite writer lock."""


class WriterQueue:
    """The threads of one process take turns to write to SQLite, in order, here rather
    than in SQLite's busy handler (whose backoff sleeps gave long tails); none waits
    longer than ``timeout``."""

    def __init__(self, timeout: float) -> None:
        self._lock = threading.Lock()
        self.timeout = timeout

    def __enter__(self) -> None:
        if not self._lock.acquire(timeout=self.timeout):
            raise WriterBusy(f"another writer held the database for {self.timeout:g} s")

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.release()


class FaultKind(enum.StrEnum):
    BUSY = "busy"  # a lock waited for too long, a deadlock, a serialisation failure
    CANCELLED = "cancelled"  # a statement ran too long, or an operator cancelled it
    DOWN = "down"  # no connection, a lost one, a server shutting down, a full disk


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    detail: str  # a sentence for the client, naming no internals
    retry_after: int  # seconds


_BUSY = Fault(FaultKind.BUSY, "the database is busy; try again shortly", 1)
_CANCELLED = Fault(FaultKind.CANCELLED, "the database cancelled the statement; try again", 2)
_DOWN = Fault(FaultKind.DOWN, "the database is unavailable; try again later", 5)

# PostgreSQL's SQLSTATEs (its manual, appendix A) by what they mean for a retry
_STATES = {
    "40001": _BUSY,  # serialization_failure
    "40P01": _BUSY,  # deadlock_detected
    "55P03": _BUSY,  # lock_not_available (lock_timeout)
    "53300": _BUSY,  # too_many_connections
    "57014": _CANCELLED,  # query_canceled (statement_timeout, pg_cancel_backend)
    "25P03": _DOWN,  # idle_in_transaction_session_timeout: the session is gone
    "57P01": _DOWN,  # admin_shutdown (pg_terminate_backend, a restart)
    "57P02": _DOWN,  # crash_shutdown
    "57P03": _DOWN,  # cannot_connect_now (starting up)
    "53100": _DOWN,  # disk_full
    "53200": _DOWN,  # out_of_memory
    "57P05": _DOWN,  # idle_session_timeout: the session is gone
}
_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")
_SQLITE_DOWN = ("disk i/o error", "database or disk is full", "unable to open database")


def fault_of(error: BaseException) -> Fault | None:
    """What a database error means for a retry; None for anything else (a bug, a
    constraint, a diagram's error): only what is listed here is a fault. Takes
    SQLAlchemy's errors and the drivers' own (``Database.first`` runs on the driver)."""
    if isinstance(error, WriterBusy | sa_exc.TimeoutError):  # the pool's wait, too
        return _BUSY
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return _DOWN
        return _driver_fault(error.orig)
    return _driver_fault(error)


def _driver_fault(error: BaseException | None) -> Fault | None:
    state = getattr(error, "sqlstate", None)
    if isinstance(state, str):
        if state in _STATES:
            return _STATES[state]
        return _DOWN if state.startswith("08") else None  # connection_exception
    if isinstance(error, sqlite3.OperationalError):
        text = str(error).lower()
        if text.startswith(_SQLITE_BUSY):
            return _BUSY
        return _DOWN if text.startswith(_SQLITE_DOWN) else None
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError) and state is None:
        return _DOWN  # no SQLSTATE: the driver could not reach the server
    return None


def violates(error: BaseException, constraint: str) -> bool:
    """Whether ``error`` is the violation of the unique constraint or index named
    ``constraint`` (PostgreSQL names it; SQLite names its columns: ``_SQLITE_COLUMNS``)."""
    if not isinstance(error, sa_exc.IntegrityError):
        return False
    orig = error.orig
    diag = getattr(orig, "diag", None)
    if diag is not None:
        return getattr(diag, "constraint_name", None) == constraint
    return str(orig).startswith("UNIQUE constraint failed: ") and (
        str(orig).removeprefix("UNIQUE constraint failed: ") == _SQLITE_COLUMNS.get(constraint)
    )


# SQLite says which columns a unique violation was on, not which index
_SQLITE_COLUMNS = {
    "ux_request_key_sender_key": "request_key.sender, request_key.key",
    "ux_message_sender_key": "message.sender, message.idempotency_key",
}

"""Database connection: the URL, engine creation and the transaction boundary.

SQLite (WAL) is the embedded default, PostgreSQL the production store. Writers take the
lock up front on SQLite (``BEGIN IMMEDIATE``): a deferred transaction that reads and then
writes can deadlock against another writer, which busy_timeout cannot resolve.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from weakref import WeakKeyDictionary

import sqlalchemy
from sqlalchemy import Connection, Dialect, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

DEFAULT_URL = "sqlite:///var/tradeflow.db"
_WRITE = "tradeflow_write"
# With a background checkpointer a commit checkpoints only if the log passes this many
# pages (a stalled checkpointer must not let it grow without end); SQLite's default: 1000
_FALLBACK_AUTOCHECKPOINT = 10_000
_MMAP_BYTES = 256 * 1024 * 1024  # address space, not memory: the kernel's page cache backs it


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
        # LIFO: a thread gets back the connection it used last. An SQLite connection drops
        # its page cache when another connection has written since its last statement, so
        # reads on the connection that last wrote cost a fraction (docs/performance.md,
        # tests/engine/storage/test_db.py)
        in_memory = not path or path == ":memory:"  # one connection per thread already
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            **({} if in_memory else {"pool_use_lifo": True}),
        )
        _configure_sqlite(engine)
        return engine
    # no pre-ping: it is a round trip per checkout; recycle instead, and a connection that
    # died under a restart fails one request. No JIT: its compiling (most of a second) is for
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


Processor = Callable[[Any], Any]

# The SQLAlchemy versions whose private compiler members ``_compiled_internals`` reads
# were checked against (tests/engine/storage/test_prepared.py compares every prepared
# statement's rows and writes with SQLAlchemy's own): another version must be checked
# again before it runs here.
SQLALCHEMY_CHECKED = ("2.1.9",)


def check_sqlalchemy() -> None:
    """Refuse a SQLAlchemy whose private members ``_compiled_internals`` reads were not
    checked (at import of this module, and again as each statement is compiled)."""
    if sqlalchemy.__version__ not in SQLALCHEMY_CHECKED:
        raise RuntimeError(
            f"SQLAlchemy {sqlalchemy.__version__}: Prepared reads private members checked "
            f"against {', '.join(SQLALCHEMY_CHECKED)} only"
        )


check_sqlalchemy()


def _compiled_internals(
    compiled: SQLCompiler, dialect: Dialect
) -> tuple[Mapping[str, Any], tuple[str, ...], tuple[Processor | None, ...]]:
    """The three things ``Prepared`` needs that SQLAlchemy keeps private, read here and
    nowhere else: the compiled statement's bind processors (its type conversions on the
    way in), its result keys, and each result column's conversion on the way out."""
    check_sqlalchemy()
    entries = compiled._result_columns
    return (
        compiled._bind_processors,
        tuple(e.keyname for e in entries),
        tuple(e.type._cached_result_processor(dialect, None) for e in entries),
    )


@dataclass(frozen=True)
class _Plan:
    """A statement as one dialect's driver takes it."""

    sql: str
    # bind name -> the caller's key and SQLAlchemy's conversion for it; a value of the
    # statement's own (a LIMIT, a separator) is converted once, here
    binds: tuple[tuple[str, str | None, Processor | None, Any], ...]
    positional: bool
    columns: tuple[str, ...]  # result keys
    results: tuple[Processor | None, ...] | None  # None: every value as the driver gives it


class Prepared:
    """A Core statement compiled once per dialect and run straight through the driver.

    SQLAlchemy's execute costs tens of microseconds of Python per statement (cache key,
    parameter processing, result set-up), several times the SQL itself on the hot path,
    where every command runs the same few statements (docs/performance.md).
    Here the statement is compiled once, with the same type conversions on the way in and
    out as SQLAlchemy applies (its own processors), so what is stored and read back is the
    same, byte for byte (tests/engine/storage/test_prepared.py). No expanding (IN) parameters.
    """

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._plans: dict[str, _Plan] = {}

    def plan(self, dialect: Dialect) -> _Plan:
        found = self._plans.get(dialect.name)
        if found is None:
            found = self._plans[dialect.name] = self._compile(dialect)
        return found

    def _compile(self, dialect: Dialect) -> _Plan:
        compiled = cast(SQLCompiler, self.statement.compile(dialect=dialect))
        callers = {bind.key for bind in compiled.binds.values() if bind.required}
        if compiled.literal_execute_params or compiled.post_compile_params:
            # a value rendered at execution (PostgreSQL's string_agg separator) is rendered
            # in now; the caller's parameters stay placeholders (the values are stand-ins)
            statement = self.statement.params(dict.fromkeys(callers))
            compiled = cast(
                SQLCompiler,
                statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True}),
            )
        processors, columns, results = _compiled_internals(compiled, dialect)
        by_name = {name: bind for bind, name in compiled.bind_names.items()}
        if any(bind.expanding for bind in by_name.values()):
            raise ValueError("Prepared takes no expanding (IN) parameters")
        if compiled.positional:
            names = list(compiled.positiontup or ())
        else:  # those the text uses: a value rendered in is no parameter any more
            names = [n for n in sorted(by_name) if f"%({n})s" in compiled.string]
        binds: list[tuple[str, str | None, Processor | None, Any]] = []
        for name in names:
            bind = by_name[name]
            convert = processors.get(name)
            if convert is not None and not callable(convert):
                raise ValueError("Prepared takes no tuple parameters")
            if bind.key in callers:
                binds.append((name, bind.key, convert, None))
            else:
                value = convert(bind.value) if convert is not None else bind.value
                binds.append((name, None, None, value))
        return _Plan(
            sql=compiled.string,
            binds=tuple(binds),
            positional=compiled.positional,
            columns=columns,
            results=results if any(results) else None,
        )

    @staticmethod
    def _params(plan: _Plan, params: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        values = [
            (value if key is None else convert(params[key]) if convert else params[key])
            for _, key, convert, value in plan.binds
        ]
        if plan.positional:
            return values
        return {name: value for (name, *_), value in zip(plan.binds, values, strict=True)}

    @staticmethod
    def _row(plan: _Plan, row: Sequence[Any]) -> tuple[Any, ...]:
        if plan.results is None:
            return tuple(row)
        return tuple(p(v) if p else v for p, v in zip(plan.results, row, strict=True))

    def run(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Execute on the transaction's connection; the rows, converted (none for a
        statement that returns none)."""
        return self.run_on(driver_of(conn), conn.dialect, params)

    def run_on(
        self, driver: Any, dialect: Dialect, params: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        plan = self.plan(dialect)
        cursor = driver.cursor()
        try:
            cursor.execute(plan.sql, self._params(plan, params))
            if not plan.columns:  # known when compiled: psycopg builds a description anew
                return []
            return [self._row(plan, row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def first(self, conn: Connection, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row as {column: value}, or None."""
        rows = self.run(conn, params)
        return self.record(conn.dialect, rows[0]) if rows else None

    def record(self, dialect: Dialect, row: tuple[Any, ...]) -> dict[str, Any]:
        """A row this statement returned, as {column: value}."""
        return dict(zip(self.plan(dialect).columns, row, strict=True))

    def run_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per parameter set: the driver's executemany, or for one set (the
        usual case) a plain execute, which costs less."""
        if len(rows) == 1:
            self.run(conn, rows[0])
            return
        plan = self.plan(conn.dialect)
        cursor = driver_of(conn).cursor()
        try:
            cursor.executemany(plan.sql, [self._params(plan, row) for row in rows])
        finally:
            cursor.close()


def run_together(
    conn: Connection, statements: Sequence[tuple[Prepared, Mapping[str, Any]]]
) -> list[list[tuple[Any, ...]]]:
    """Run the statements in order, each one's rows returned (converted as ``run``). On
    PostgreSQL they go in one round trip (psycopg's pipeline), the server still running
    each after the one before, so a statement sees what a lock taken just before it
    guarded; elsewhere one after another."""
    if conn.dialect.name != "postgresql":
        return [prepared.run(conn, params) for prepared, params in statements]
    driver = driver_of(conn)
    cursors = []
    with driver.pipeline():
        for prepared, params in statements:
            plan = prepared.plan(conn.dialect)
            cursor = driver.cursor()
            cursor.execute(plan.sql, Prepared._params(plan, params))
            cursors.append((plan, cursor))
    found = []
    for plan, cursor in cursors:
        try:
            rows = cursor.fetchall() if plan.columns else []
            found.append([Prepared._row(plan, row) for row in rows])
        finally:
            cursor.close()
    return found


def driver_of(conn: Connection) -> Any:
    """The driver's own connection under a Connection (sqlite3's, psycopg's)."""
    driver = conn.connection.driver_connection
    assert driver is not None  # a live connection in a transaction
    return driver


_checkpointers: WeakKeyDictionary[Engine, Checkpointer] = WeakKeyDictionary()


class Database:
    """An engine plus its two kinds of sessions: read (inbox, history) and write."""

    def __init__(self, url: str | None = None, engine: Engine | None = None) -> None:
        self.engine = engine or make_engine(url)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        # whether two writers' transactions run side by side, each not seeing the
        # other's rows until commit (PostgreSQL); SQLite has one writer at a time
        self.writers_overlap = self.is_postgres
        # SQLite has one writer at a time. Threads of one process queue here, in order,
        # rather than in SQLite's busy handler, whose backoff sleeps gave long tails.
        self._writer: AbstractContextManager[Any] = (
            nullcontext() if self.is_postgres else threading.Lock()
        )
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = self.engine.execution_options(**{_WRITE: True})
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)
        # PostgreSQL, per thread: a connection kept for ``first`` (every request's bearer lookup)
        self._lookups = threading.local()
        self._lookups_lock = threading.Lock()
        self._lookups_kept: list[Any] = []

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

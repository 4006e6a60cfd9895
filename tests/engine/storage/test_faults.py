"""Every wait on the database is bounded, and what a wait that ran out (or a lost
connection, a cancelled statement) raises is named a fault: busy, cancelled or down."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from engine.storage import Database, faults
from engine.storage.faults import FaultKind, Waits, WriterBusy
from tests.conftest import PG_URL

SHORT = Waits(lock=0.3, statement=0.5, idle_transaction=1.0)


def with_waits(db: Database, waits: Waits) -> Database:
    """Another Database on the same store whose waits are ``waits``."""
    url = db.engine.url.render_as_string(hide_password=False)
    if not db.is_postgres:
        return Database(url, waits=waits)
    with db.engine.connect() as conn:
        path = conn.execute(text("SHOW search_path")).scalar_one()
    options = f"-csearch_path={path.replace(' ', '')} {waits.postgres_options()}"
    return Database(engine=create_engine(url, connect_args={"options": options}), waits=waits)


def kind(error: BaseException) -> FaultKind | None:
    found = faults.fault_of(error)
    return found.kind if found is not None else None


@contextmanager
def held_writer(db: Database) -> Iterator[None]:
    """Another process's transaction holding the database's writer lock (SQLite), or the
    first instance row's lock (PostgreSQL), until the block ends."""
    if db.is_postgres:
        with db.engine.connect() as conn, conn.begin():
            conn.execute(text("LOCK TABLE instance IN ACCESS EXCLUSIVE MODE"))
            yield
        return
    raw = sqlite3.connect(db.engine.url.database or "", isolation_level=None)
    raw.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        raw.execute("ROLLBACK")
        raw.close()


def test_a_lock_held_elsewhere_ends_the_wait_as_busy(db: Database) -> None:
    short = with_waits(db, SHORT)
    began = time.monotonic()
    with held_writer(db), pytest.raises(Exception) as caught, short.transaction() as session:
        session.execute(text("SELECT count(*) FROM instance")).all()
    assert time.monotonic() - began < 3
    assert kind(caught.value) == FaultKind.BUSY
    short.dispose()


def test_a_thread_waits_its_turn_to_write_no_longer_than_the_lock_wait(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'q.db'}", waits=SHORT)
    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with db.transaction():
            inside.set()
            leave.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert inside.wait(5)
        began = time.monotonic()
        with pytest.raises(WriterBusy), db.transaction():
            pass
        assert 0.25 < time.monotonic() - began < 2
    finally:
        leave.set()
        holder.join(5)
    assert kind(WriterBusy("x")) == FaultKind.BUSY
    db.dispose()


@pytest.mark.parametrize(
    "db", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_postgres_statement_limits_and_cancels_are_faults(db: Database) -> None:
    short = with_waits(db, SHORT)
    with pytest.raises(Exception) as slow, short.transaction() as session:
        session.execute(text("SELECT pg_sleep(5)"))
    assert kind(slow.value) == FaultKind.CANCELLED
    # an operator's pg_cancel_backend is the same fault
    pids: list[int] = []
    errors: list[BaseException] = []

    def sleeper() -> None:
        try:
            with db.transaction() as session:
                pids.append(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
                session.execute(text("SELECT pg_sleep(10)"))
        except BaseException as exc:  # examined below
            errors.append(exc)

    worker = threading.Thread(target=sleeper)
    worker.start()
    deadline = time.monotonic() + 5
    while not pids and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_cancel_backend(%s)", (pids[0],))
    worker.join(10)
    assert [kind(e) for e in errors] == [FaultKind.CANCELLED]
    # a transaction left idle too long: the server ends the session
    with pytest.raises(Exception) as idle, short.transaction() as session:
        session.execute(text("SELECT 1"))
        time.sleep(1.5)
        session.execute(text("SELECT 1"))
    assert kind(idle.value) == FaultKind.DOWN
    short.dispose()


def test_an_unreachable_database_is_down_and_other_errors_are_not_faults(db: Database) -> None:
    with pytest.raises(Exception) as refused:
        psycopg.connect("postgresql://postgres@127.0.0.1:1/none", connect_timeout=2)
    assert kind(refused.value) == FaultKind.DOWN
    gone = Database("postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(Exception) as wrapped, gone.transaction() as session:
        session.execute(text("SELECT 1"))
    assert kind(wrapped.value) == FaultKind.DOWN
    with pytest.raises(IntegrityError) as duplicate, db.transaction() as session:
        for _ in range(2):
            session.execute(
                text("INSERT INTO role (id, created_at) VALUES ('dup', CURRENT_TIMESTAMP)")
            )
    assert kind(duplicate.value) is None
    assert kind(ValueError("a bug")) is None
    # the database's answer to a bug of ours (no such table) is no fault: a 500, its
    # traceback logged, not "try again later"
    with pytest.raises(Exception) as bug, db.transaction() as session:
        session.execute(text("SELECT * FROM no_such_table"))
    assert kind(bug.value) is None
    if db.is_postgres:  # 54000, program_limit_exceeded: nothing a retry changes
        with pytest.raises(Exception) as limit, db.transaction() as session:
            session.execute(text("SELECT repeat('x', 1 << 30) || repeat('x', 1 << 30)"))
        assert kind(limit.value) is None


def test_the_probe_says_what_is_wrong(db: Database) -> None:
    db.probe(1.0)  # answers
    if not db.is_postgres:  # the writer lock held (a long command) is not an outage
        with held_writer(db):
            db.probe(1.0)
    with pytest.raises(Exception) as down:
        Database("postgresql://postgres@127.0.0.1:1/none").probe(1.0)
    assert kind(down.value) == FaultKind.DOWN


def test_waits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEFLOW_LOCK_TIMEOUT", "2.5")
    monkeypatch.setenv("TRADEFLOW_STATEMENT_TIMEOUT", "30")
    waits = Waits.from_env()
    assert (waits.lock, waits.statement, waits.idle_transaction) == (2.5, 30.0, 60.0)
    assert "-c lock_timeout=2500 -c statement_timeout=30000" in waits.postgres_options()
    for bad in ("soon", "0", "-1", "7200"):
        monkeypatch.setenv("TRADEFLOW_LOCK_TIMEOUT", bad)
        with pytest.raises(ValueError, match="TRADEFLOW_LOCK_TIMEOUT"):
            Waits.from_env()

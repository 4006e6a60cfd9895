"""The database wrapper: SQLite's log checkpointed beside the requests, its pages read
through a memory map, and a thread's reads on the connection its writes went through."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import select, text

from engine.storage import Database, Prepared


def _write(db: Database, rows: int) -> int:
    """Rows of 0, 5, 10... kB, one commit each: some 950 kB for 20, less than SQLite's
    own checkpoint threshold (1000 pages). Their bytes."""
    with db.transaction() as session:
        session.execute(text("CREATE TABLE t (x TEXT)"))
    for n in range(rows):
        with db.transaction() as session:
            session.execute(text("INSERT INTO t VALUES (:x)"), {"x": "x" * 5000 * n})
    return sum(5000 * n for n in range(rows))


def test_a_background_checkpointer_copies_the_log_and_commits_do_not(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    db = Database(f"sqlite:///{path}")
    db.checkpoint_in_background(interval=0.02)
    try:
        with db.engine.connect() as conn:
            (limit,) = conn.execute(text("PRAGMA wal_autocheckpoint")).one()
            assert limit > 1000  # commits checkpoint only if the thread falls far behind
        written = _write(db, 20)
        deadline = time.monotonic() + 10  # the rows reach the database file itself
        while path.stat().st_size < written and time.monotonic() < deadline:
            time.sleep(0.02)
        assert path.stat().st_size >= written
        with db.reading() as session:
            assert session.execute(text("SELECT count(*) FROM t")).scalar() == 20
    finally:
        db.dispose()


def test_without_it_commits_checkpoint_as_sqlite_does(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    db = Database(f"sqlite:///{path}")
    try:
        with db.engine.connect() as conn:
            assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 1000
        written = _write(db, 20)
        time.sleep(0.1)
        assert path.stat().st_size < written  # all still in the log
    finally:
        db.dispose()


def test_a_database_in_memory_has_no_checkpointer() -> None:
    db = Database("sqlite:///:memory:")
    db.checkpoint_in_background()  # nothing to do: no file, no log
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 1000
    db.dispose()


_PROBE = Prepared(select(text("mark")).select_from(text("temp.probe")))


def _mark_connection(db: Database, mark: str) -> None:
    """A unit of work that leaves a temporary table on the connection it wrote through
    (temporary tables live in one connection: a read elsewhere cannot see it)."""
    with db.unit() as session:
        conn = session.connection()
        conn.execute(text("CREATE TEMP TABLE IF NOT EXISTS probe (mark TEXT)"))
        conn.execute(text("DELETE FROM temp.probe"))
        conn.execute(text("INSERT INTO temp.probe VALUES (:m)"), {"m": mark})


def test_a_lookup_reads_on_the_connection_the_threads_last_unit_wrote_on(
    tmp_path: Path,
) -> None:
    """An SQLite connection drops its page cache when another connection wrote since its
    last statement; the bearer lookup after a unit of work reads on the unit's connection,
    whose cache that commit left valid (4x cheaper measured), in this thread and in others."""
    db = Database(f"sqlite:///{tmp_path / 't.db'}")
    try:
        _mark_connection(db, "main")
        assert db.first(_PROBE, {}) == ("main",)
        assert db.first(_PROBE, {}) == ("main",)  # and again: no connection kept apart
        seen: list[object] = []

        def elsewhere() -> None:
            _mark_connection(db, "thread")
            seen.append(db.first(_PROBE, {}))

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        assert seen == [("thread",)]
    finally:
        db.dispose()


def test_sqlite_pages_are_read_through_a_memory_map(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 't.db'}")
    try:
        with db.reading() as session:
            assert session.execute(text("PRAGMA mmap_size")).scalar() == 256 * 1024 * 1024
    finally:
        db.dispose()

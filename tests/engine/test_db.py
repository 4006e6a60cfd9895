"""The database wrapper: SQLite's log checkpointed beside the requests."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from engine.db import Database


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

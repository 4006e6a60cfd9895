"""What PostgreSQL and SQLite do differently when writers meet, said once.

SQLite has one writer at a time (the database's writer lock, and Database's own queue in
front of it), so what PostgreSQL needs a lock or a clause for is already true there.
``FOR UPDATE`` needs nothing here: SQLAlchemy leaves it out on SQLite by itself.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def queue_writers(db: Session | Connection, key: str) -> None:
    """Writers of ``key`` (a shared audit stream, a business key) take turns from here to
    their commit: PostgreSQL's transaction-level advisory lock on the key's hash."""
    if _postgres(db):
        db.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})


def insert_missing(
    db: Session | Connection, table: Table, values: dict[str, Any], key: list[str]
) -> None:
    """Insert a row unless one with the same ``key`` columns exists (ON CONFLICT DO
    NOTHING, in each dialect's own words)."""
    dialect = postgresql if _postgres(db) else sqlite
    db.execute(dialect.insert(table).values(values).on_conflict_do_nothing(index_elements=key))


def read_one_moment(db: Session | Connection) -> None:
    """Make the read transaction just begun see one moment throughout: PostgreSQL's READ
    COMMITTED takes a new snapshot per statement; SQLite's read transaction already
    keeps its first."""
    if _postgres(db):
        db.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))


def _postgres(db: Session | Connection) -> bool:
    bind = db.get_bind() if isinstance(db, Session) else db
    return bind.dialect.name == "postgresql"

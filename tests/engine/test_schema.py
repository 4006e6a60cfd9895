"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from engine.db import Database
from engine.models import Base
from engine.schema import current, upgrade


def test_migrations_match_the_models(db: Database) -> None:
    assert current(db) is not None
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_upgrade_is_safe_to_repeat(db: Database) -> None:
    before = current(db)
    upgrade(db)
    assert current(db) == before

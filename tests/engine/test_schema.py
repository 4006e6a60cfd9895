"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from engine.db import Database
from engine.models import Base
from engine.schema import current, upgrade

# Indexes with expressions or DESC: SQLite reflects them without those, so the
# comparison below cannot see them; their presence is checked by name instead.
EXPRESSION_INDEXES = {"ix_human_task_inbox_due", "ix_human_task_inbox_priority"}


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
def test_migrations_match_the_models(db: Database) -> None:
    assert current(db) is not None
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    unexplained = [
        d
        for d in diff
        if not (d[0] in ("add_index", "remove_index") and d[1].name in EXPRESSION_INDEXES)
    ]
    assert unexplained == []
    with db.engine.connect() as conn:
        if db.is_postgres:
            sql = "SELECT indexname FROM pg_indexes WHERE tablename = 'human_task'"
        else:  # reflection skips expression indexes on SQLite: ask the catalogue
            sql = "SELECT name FROM sqlite_master WHERE type = 'index'"
        names = set(conn.exec_driver_sql(sql).scalars())
    assert names >= EXPRESSION_INDEXES


def test_upgrade_is_safe_to_repeat(db: Database) -> None:
    before = current(db)
    upgrade(db)
    assert current(db) == before == "0007"

"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert

from engine.storage import AuditEvent, Base, Database, upgrade
from engine.storage.schema import alembic_config, current

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
    head = ScriptDirectory.from_config(alembic_config(db)).get_current_head()
    assert current(db) == before == head


def test_the_audit_heads_migration_records_the_shared_streams_heads(db: Database) -> None:
    """0007 on a database that has a trail: the shared streams' heads are taken from it,
    and the trail verifies; going back down and up again is clean."""
    from alembic import command

    from engine.audit import DEFINITIONS_STREAM, GENESIS, verification
    from engine.audit.trail import event_hash

    def down_to(revision: str) -> None:
        with db.engine.begin() as conn:
            cfg = alembic_config(db)
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, revision)

    down_to("0005")
    prev, rows = GENESIS, []
    for seq in (1, 2, 3):
        row = {
            "stream": DEFINITIONS_STREAM, "seq": seq, "instance_id": None,
            "at": datetime(2026, 1, seq, tzinfo=UTC), "actor": "owner",
            "kind": "definition_deployed", "element_id": f"p{seq}", "element_name": None,
            "role": None, "data": "{}", "prev_hash": prev,
        }  # fmt: skip
        row["hash"] = prev = event_hash(row, "{}")
        rows.append(row)
    with db.engine.begin() as conn:
        conn.execute(insert(AuditEvent.__table__), rows)  # type: ignore[arg-type]
    upgrade(db)
    with verification.snapshot(db) as session:
        assert verification.recorded_head(session, DEFINITIONS_STREAM) == (3, prev)
        assert verification.verify_trail(session).ok

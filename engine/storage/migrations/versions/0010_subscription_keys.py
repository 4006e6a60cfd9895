"""A message correlated by values finds its instance through an index of the waiting
instances' correlation keys, not by loading every waiting workflow in the write
transaction. The keys of instances waiting now are written from their saved state.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscription_key",
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["instance_id"], ["instance.id"]),
        sa.PrimaryKeyConstraint("instance_id", "name"),
    )
    op.create_index(
        "ix_subscription_key_value", "subscription_key", ["name", "value", "instance_id"]
    )
    _index_waiting(op.get_bind())


def _index_waiting(conn: sa.Connection) -> None:
    """An instance whose state can't be read here is left for its next save to index
    (said in the log): it must not stop the upgrade."""
    import logging

    from engine.execution import StateSerializer, correlation_keys, scan, variables

    log = logging.getLogger("tradeflow.migrations")

    serializer = StateSerializer()
    specs: dict[int, object] = {}
    waiting = conn.execute(
        sa.text(
            "SELECT i.id, i.definition_id, i.state FROM instance i WHERE i.status = 'running' "
            "AND EXISTS (SELECT 1 FROM message_subscription s WHERE s.instance_id = i.id)"
        )
    )
    for instance_id, definition_id, state in waiting:
        try:
            if definition_id not in specs:
                spec_json = conn.execute(
                    sa.text("SELECT spec_json FROM definition WHERE id = :id"),
                    {"id": definition_id},
                ).scalar_one()
                specs[definition_id] = serializer.spec_from_json(spec_json)
            workflow = serializer.loads(state, specs[definition_id])  # type: ignore[arg-type]
            keys = correlation_keys(variables(workflow, scan(workflow)))
        except Exception:
            log.exception("instance %s: its correlation keys wait for its next save", instance_id)
            continue
        if keys:
            conn.execute(
                sa.text(
                    "INSERT INTO subscription_key (instance_id, name, value) "
                    "VALUES (:instance_id, :name, :value)"
                ),
                [{"instance_id": instance_id, "name": n, "value": v} for n, v in keys.items()],
            )


def downgrade() -> None:
    op.drop_index("ix_subscription_key_value", table_name="subscription_key")
    op.drop_table("subscription_key")

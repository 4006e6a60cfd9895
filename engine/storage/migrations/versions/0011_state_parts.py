"""An instance's large variables are saved apart, each once under its content's hash, so
a step that leaves them unchanged does not write them again. States saved before keep
their variables inline: they are split at their next save.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "state_part",
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["instance_id"], ["instance.id"]),
        sa.PrimaryKeyConstraint("instance_id", "key"),
    )


def downgrade() -> None:
    # the parts go back into the states that refer to them before the table goes
    import json

    from engine.execution import has_parts, join_parts

    conn = op.get_bind()
    for instance_id, state in conn.execute(sa.text("SELECT id, state FROM instance")).all():
        if not has_parts(state):
            continue
        parts = dict(
            conn.execute(
                sa.text("SELECT key, body FROM state_part WHERE instance_id = :id"),
                {"id": instance_id},
            ).all()
        )
        dct = json.loads(state)
        join_parts(dct, parts)
        conn.execute(
            sa.text("UPDATE instance SET state = :state WHERE id = :id"),
            {"state": json.dumps(dct, separators=(",", ":")), "id": instance_id},
        )
    op.drop_table("state_part")

"""Time limits: a task's SLA breach is recorded once (when it was found overdue); a
definition lists its timers that count business time.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("human_task") as batch_op:
        batch_op.add_column(sa.Column("breached_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("definition") as batch_op:
        batch_op.add_column(
            sa.Column(
                "business_timers",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default="[]",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("definition") as batch_op:
        batch_op.drop_column("business_timers")
    with op.batch_alter_table("human_task") as batch_op:
        batch_op.drop_column("breached_at")

"""Time limits: a task's SLA breach is recorded once (when it was found overdue); a
definition lists its timers that count business time; processes that start on a timer.

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

    op.create_table(
        "start_timer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("definition_key", sa.String(length=255), nullable=False),
        sa.Column("definition_id", sa.Integer(), nullable=False),
        sa.Column("element_id", sa.String(length=255), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cycles_left", sa.Integer(), nullable=False),
        sa.Column("every_seconds", sa.Float(), nullable=True),
        sa.Column("every_months", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["definition_id"], ["definition.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("definition_key"),
    )
    op.create_index("ix_start_timer_due", "start_timer", ["next_at"])


def downgrade() -> None:
    op.drop_index("ix_start_timer_due", table_name="start_timer")
    op.drop_table("start_timer")
    with op.batch_alter_table("definition") as batch_op:
        batch_op.drop_column("business_timers")
    with op.batch_alter_table("human_task") as batch_op:
        batch_op.drop_column("breached_at")

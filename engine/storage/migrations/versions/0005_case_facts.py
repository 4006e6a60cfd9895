"""The department's measures at scale: one row of facts per instance (engine/reporting/facts.py),
kept by the unit of work, and the tasks of each past week summed per step
(engine/reporting/rollups.py). Existing trails and tasks are summed here.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "case_facts",
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("definition_key", sa.String(length=255), nullable=False),
        sa.Column("business_key", sa.String(length=255), nullable=True),
        sa.Column("started_at", _WHEN, nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("grade", sa.String(length=16), nullable=True),
        sa.Column("quoted_at", _WHEN, nullable=True),
        sa.Column("quote_sent_at", _WHEN, nullable=True),
        sa.Column("signed_at", _WHEN, nullable=True),
        sa.Column("promised_date", sa.String(length=32), nullable=True),
        sa.Column("shipped_at", _WHEN, nullable=True),
        sa.Column("reviewed_at", _WHEN, nullable=True),
        sa.Column("documents_first_pass", sa.Boolean(), nullable=True),
        sa.Column("invoiced_at", _WHEN, nullable=True),
        sa.Column("overdue_at", _WHEN, nullable=True),
        sa.Column("paid_at", _WHEN, nullable=True),
        sa.Column("collection_outcome", sa.String(length=32), nullable=True),
        sa.Column("surveyed_at", _WHEN, nullable=True),
        sa.Column("satisfaction", sa.Integer(), nullable=True),
        sa.Column("complaint", sa.Boolean(), nullable=True),
        sa.Column("customer_recorded_at", _WHEN, nullable=True),
        sa.ForeignKeyConstraint(["instance_id"], ["instance.id"]),
        sa.PrimaryKeyConstraint("instance_id"),
    )
    op.create_index("ix_case_facts_definition_key", "case_facts", ["definition_key"])
    op.create_table(
        "step_week",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("definition_key", sa.String(length=255), nullable=False),
        sa.Column("element_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("roles", sa.String(length=512), nullable=False),
        sa.Column("user_name", sa.String(length=128), nullable=False),
        sa.Column("grade", sa.String(length=16), nullable=False),
        *(sa.Column(n, sa.Integer(), nullable=False)
          for n in ("ended", "completed", "reworked", "limited", "met", "late")),
        sa.Column("waits", sa.LargeBinary(), nullable=False),
        sa.Column("works", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("week", "definition_key", "element_id", "roles", "user_name", "grade"),
    )  # fmt: skip
    op.create_table(
        "summary_mark",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("until", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    # the tasks that ended in a period (the days not summed yet) are found by it
    op.create_index("ix_human_task_ended_at", "human_task", ["ended_at"])

    from datetime import UTC, datetime

    from engine.reporting import facts, rollups

    conn = op.get_bind()
    facts.rebuild(conn)
    rollups.roll_up(conn, datetime.now(UTC))


def downgrade() -> None:
    op.drop_index("ix_human_task_ended_at", table_name="human_task")
    op.drop_table("summary_mark")
    op.drop_table("step_week")
    op.drop_index("ix_case_facts_definition_key", table_name="case_facts")
    op.drop_table("case_facts")

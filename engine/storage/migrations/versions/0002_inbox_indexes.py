"""Indexes in the inbox's sort orders (the inbox's p95 at scale: docs/performance.md).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_human_task_state_due", table_name="human_task")
    op.create_index(
        "ix_human_task_inbox_due",
        "human_task",
        ["state", sa.text("(due_at IS NULL)"), "due_at", sa.text("priority DESC"), "id"],
    )
    op.create_index(
        "ix_human_task_inbox_priority", "human_task", ["state", sa.text("priority DESC"), "id"]
    )
    op.create_index("ix_human_task_state_assignee", "human_task", ["state", "assignee"])


def downgrade() -> None:
    op.drop_index("ix_human_task_state_assignee", table_name="human_task")
    op.drop_index("ix_human_task_inbox_priority", table_name="human_task")
    op.drop_index("ix_human_task_inbox_due", table_name="human_task")
    op.create_index("ix_human_task_state_due", "human_task", ["state", "due_at"])

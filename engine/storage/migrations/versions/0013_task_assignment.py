"""A user task's assignment as the diagram writes it (``camunda:assignee``,
``candidateUsers``, ``candidateGroups``, ``priority``, ``dueDate`` as expressions), kept
with its routing and evaluated when the task is created. Tasks deployed before have none.
A task's queues now include those of single users (``user:NAME``, an assignee or a
candidate user): the column that holds a task's queue ids widens to take a user's name.
Decisions deployed before are marked ``legacy``: they were read Python-style, their UNIQUE
answering the first match, and go on being read so (engine/modeling/dmn.py).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _widen(old: int, new: int) -> None:
    # a batch: SQLite rebuilds the table (nothing refers to it, its index is on columns)
    with op.batch_alter_table("human_task_role") as batch:
        batch.alter_column("role_id", type_=sa.String(new), existing_type=sa.String(old))


def upgrade() -> None:
    _widen(64, 160)
    with op.batch_alter_table("definition_task") as batch:
        batch.add_column(
            sa.Column(
                "assignment",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default="{}",
            )
        )

    with op.batch_alter_table("decision") as batch:
        batch.add_column(
            sa.Column("legacy", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute(sa.text("UPDATE decision SET legacy = :yes").bindparams(yes=True))


def downgrade() -> None:
    with op.batch_alter_table("decision") as batch:
        batch.drop_column("legacy")
    with op.batch_alter_table("definition_task") as batch:
        batch.drop_column("assignment")
    op.execute("DELETE FROM human_task_role WHERE role_id LIKE 'user:%'")
    _widen(160, 64)

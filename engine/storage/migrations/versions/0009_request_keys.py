"""A start or a completion sent again under its Idempotency-Key (a client that lost the
first answer) gets the first answer and changes nothing: the key and that answer are
kept, in the unit of work that did it.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=128), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("asked", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sender", "key", name="ux_request_key_sender_key"),
    )
    op.create_index("ix_request_key_created_at", "request_key", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_request_key_created_at", table_name="request_key")
    op.drop_table("request_key")

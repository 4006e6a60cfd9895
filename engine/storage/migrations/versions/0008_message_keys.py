"""Messages carry their sender's key: a repeat of one (the bank's feed sends a payment
twice) answers as the first did and changes nothing.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("message") as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=255), nullable=True))
    op.create_index("ux_message_sender_key", "message", ["sender", "idempotency_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_message_sender_key", table_name="message")
    with op.batch_alter_table("message") as batch_op:
        batch_op.drop_column("idempotency_key")

"""The audit trail's end can't be cut off unnoticed: the heads of the shared streams
(``definitions``, ``messages``) are recorded beside their events, as an instance row
records its own; the last anchor written outside the database is kept, so the next one
lists what moved since; and SQLite refuses ``INSERT OR REPLACE`` on the trail, which
deleted the event it replaced without firing the DELETE trigger.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

APPEND_ONLY = "audit_event is append-only"
FORWARD_ONLY = "audit_head only moves forward"


def upgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("stream"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "audit_anchor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("made", sa.Integer(), nullable=False),
        sa.Column("anchored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "audit_anchored",
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("stream"),
        sqlite_with_rowid=False,
    )
    op.execute("INSERT INTO audit_anchor (id, made) VALUES (1, 0)")
    # the shared streams' heads as the trail has them now (instance rows carry their own)
    op.execute(
        """
        INSERT INTO audit_head (stream, seq, hash)
        SELECT e.stream, e.seq, e.hash FROM audit_event e
        WHERE e.stream NOT LIKE 'instance:%'
          AND e.seq = (SELECT MAX(m.seq) FROM audit_event m WHERE m.stream = e.stream)
        """
    )
    if op.get_bind().dialect.name == "postgresql":
        # audit_event: the statement trigger of 0001 already refuses UPDATE, DELETE and
        # TRUNCATE, and so INSERT ... ON CONFLICT DO UPDATE and MERGE
        # (tests/engine/audit/test_audit.py)
        op.execute(
            f"""
            CREATE FUNCTION audit_head_forward_only() RETURNS trigger AS $$
            BEGIN
                IF TG_OP = 'UPDATE' THEN
                    IF NEW.stream = OLD.stream AND NEW.seq > OLD.seq THEN RETURN NEW; END IF;
                END IF;
                RAISE EXCEPTION '{FORWARD_ONLY}';
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER audit_head_forward_only BEFORE UPDATE OR DELETE ON audit_head "
            "FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_head_forward_only()"
        )
        return
    # SQLite's REPLACE (INSERT OR REPLACE, REPLACE INTO) deletes the row in its way without
    # firing DELETE triggers (recursive_triggers is off): refuse the insert before it does.
    # The message keeps the word of the unique index it stands in for. An insert that gives
    # no id sees NEW.id = -1 here: one probe of the primary key and one of (stream, seq),
    # on pages the insert reads anyway.
    op.execute(
        f"""
        CREATE TRIGGER audit_event_no_replace BEFORE INSERT ON audit_event
        WHEN EXISTS (SELECT 1 FROM audit_event WHERE id = NEW.id)
          OR EXISTS (SELECT 1 FROM audit_event WHERE stream = NEW.stream AND seq = NEW.seq)
        BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}: UNIQUE (id) or (stream, seq) taken'); END
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head
        WHEN NEW.stream IS NOT OLD.stream OR NEW.seq <= OLD.seq
        BEGIN SELECT RAISE(ABORT, '{FORWARD_ONLY}'); END
        """
    )
    op.execute(
        f"CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
        f"BEGIN SELECT RAISE(ABORT, '{FORWARD_ONLY}'); END"
    )
    op.execute(
        f"""
        CREATE TRIGGER audit_head_no_replace BEFORE INSERT ON audit_head
        WHEN EXISTS (SELECT 1 FROM audit_head WHERE stream = NEW.stream)
        BEGIN SELECT RAISE(ABORT, '{FORWARD_ONLY}'); END
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_head_no_truncate ON audit_head")
        op.execute("DROP TRIGGER audit_head_forward_only ON audit_head")
        op.execute("DROP FUNCTION audit_head_forward_only()")
    else:
        for name in ("audit_head_no_replace", "audit_head_no_delete", "audit_head_forward_only"):
            op.execute(f"DROP TRIGGER {name}")
        op.execute("DROP TRIGGER audit_event_no_replace")
    op.drop_table("audit_anchored")
    op.drop_table("audit_anchor")
    op.drop_table("audit_head")

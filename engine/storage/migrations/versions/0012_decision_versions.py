"""Decisions get versions of their own, so that a business rule task bound to ``latest``
(Camunda's default) takes the newest deployed table when it runs, not the copy baked into
its process at deploy. The decisions of the .dmn files already deployed are numbered in
the order they were deployed.

Revision ID: 0012
Revises: 0011
"""

import hashlib

import sqlalchemy as sa
from alembic import op
from lxml import etree

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("deployed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployment.id"]),
        sa.ForeignKeyConstraint(["resource_id"], ["resource.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key", "version"),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT r.id, r.deployment_id, r.content, d.deployed_at FROM resource r "
            "JOIN deployment d ON d.id = r.deployment_id WHERE r.kind = 'dmn' ORDER BY r.id"
        )
    ).all()
    newest: dict[str, tuple[int, str]] = {}  # key -> (version, sha256)
    # as deploy reads them (engine/modeling/diagrams.py), so the hashes agree
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True
    )
    for resource_id, deployment_id, content, deployed_at in rows:
        try:
            root = etree.fromstring(content.encode(), parser)
        except etree.XMLSyntaxError:
            continue  # deploy refused anything unreadable; nothing to number
        for decision in root:
            if not isinstance(decision.tag, str) or etree.QName(decision).localname != "decision":
                continue
            key = decision.get("id", "")
            sha = hashlib.sha256(etree.tostring(decision, method="c14n")).hexdigest()
            version, last = newest.get(key, (0, ""))
            if sha == last:
                continue
            newest[key] = (version + 1, sha)
            conn.execute(
                sa.text(
                    "INSERT INTO decision (key, version, deployment_id, resource_id, sha256, "
                    "deployed_at) VALUES (:k, :v, :dep, :r, :s, :at)"
                ),
                {
                    "k": key,
                    "v": version + 1,
                    "dep": deployment_id,
                    "r": resource_id,
                    "s": sha,
                    "at": deployed_at,
                },
            )


def downgrade() -> None:
    op.drop_table("decision")

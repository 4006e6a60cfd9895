"""Decisions in versions: each decision of a deployed .dmn file, by its id, numbered
like a process's versions. A business rule task bound to ``latest`` (Camunda's default)
takes the newest when it runs (engine/execution/decisions.py, the runtime's decision
source); lint reads the newest to resolve a reference to a decision deployed before.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import ProcessFailed
from engine.execution import decision_tables
from engine.modeling import diagrams, dmn
from engine.storage import Decision, Deployment, Resource


def stored_xml(session: Session, decision_id: str) -> bytes | None:
    """The .dmn file of the decision's newest version."""
    resource_id = newest(session, decision_id)
    content = _content(session, resource_id) if resource_id is not None else None
    return content.encode() if content is not None else None


def newest(session: Session, decision_id: str) -> int | None:
    """The resource id of the decision's newest version (its .dmn file)."""
    found: int | None = session.scalar(
        select(Decision.resource_id)
        .where(Decision.key == decision_id)
        .order_by(Decision.version.desc())
        .limit(1)
    )
    return found


def engine(session: Session, resource_id: int, decision_id: str) -> decision_tables.Graph | None:
    """The decision as its .dmn file (resource) has it, with what it requires; read as
    it was when deployed (``legacy``)."""
    content = _content(session, resource_id)
    if content is None:
        return None
    legacy = bool(
        session.scalar(
            select(Decision.legacy).where(
                Decision.resource_id == resource_id, Decision.key == decision_id
            )
        )
    )
    found, problems = dmn.read(diagrams.parse_xml(content.encode()), legacy=legacy)
    if problems:  # read before with other rules: it can't decide as deployed
        element, why = problems[0]
        raise ProcessFailed(
            f"decision '{decision_id}' as deployed can't be read any more ({element}: {why}); "
            "deploy it again"
        )
    return dmn.graph(found, decision_id)


def _content(session: Session, resource_id: int) -> str | None:
    found: str | None = session.scalar(select(Resource.content).where(Resource.id == resource_id))
    return found


def store(
    session: Session, deployment: Deployment, root: etree._Element, resource: Resource,
    now: datetime,
) -> list[tuple[str, int, int, bool]]:  # fmt: skip
    """A new version of each decision of the file whose content changed (or that was
    deployed before decisions were read as now: legacy): (key, version,
    row id, whether it is new) of each decision in the file."""
    found = []
    for decision in diagrams.decisions(root):
        key = decision.get("id", "")
        sha = hashlib.sha256(etree.tostring(decision, method="c14n")).hexdigest()
        current = session.scalars(
            select(Decision).where(Decision.key == key).order_by(Decision.version.desc()).limit(1)
        ).first()
        if current is not None and current.sha256 == sha and not current.legacy:
            found.append((key, current.version, current.id, False))
            continue
        row = Decision(
            key=key,
            version=(current.version + 1) if current else 1,
            deployment_id=deployment.id,
            resource_id=resource.id,
            sha256=sha,
            deployed_at=now,
        )
        session.add(row)
        session.flush()
        found.append((key, row.version, row.id, True))
    return found

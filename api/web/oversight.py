"""The pages of those who oversee the work: process owners (processes, forms and decision
tables, edited and deployed), auditors (the audit search, a trail's CSV) and the
dashboard of measures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import abort, g, render_template, request
from werkzeug.wrappers import Response

from api.auth import flow, oversees, owner_or_admin
from api.views import check_can_read
from api.web import blp
from engine import analytics, definitions, export, instances
from engine.errors import TradeflowError
from engine.instances import InstanceQuery
from engine.models import InstanceStatus

# one instance's trail: who did what, when, and the hash chain to check it by
TRAIL_COLUMNS = ("seq", "at", "actor", "kind", "element_id", "element_name", "role", "data",
                 "prev_hash", "hash")  # fmt: skip


def _allowed(check: Any) -> None:
    if not check(g.person):
        abort(403)


@blp.get("/definitions")
def definitions_page() -> str:
    """Process owners: every process with its versions, each opening in the modeler."""
    _allowed(owner_or_admin)
    with flow().db.reading() as db:
        latest = definitions.catalog(db)
        versions = {d.key: definitions.versions(db, d.key) for d in latest}
        forms = definitions.latest_forms(db)
        decisions = definitions.decision_files(db)
    return render_template(
        "definitions.html", latest=latest, versions=versions, forms=forms, decisions=decisions
    )


@blp.get("/forms/<key>/edit")
def form_editor_page(key: str) -> str:
    """The form-js editor on the latest version of a form; deployed as ``<key>.form``."""
    _allowed(owner_or_admin)
    with flow().db.reading() as db:
        found = next((f for f in definitions.latest_forms(db) if f.key == key), None)
    if found is None:
        abort(404)
    return render_template(
        "editor.html", kind="form", name=f"{key}.form", content=found.schema, version=found.version
    )


@blp.get("/decisions/<name>/edit")
def decision_editor_page(name: str) -> str:
    """The dmn-js editor on the latest deployed copy of a .dmn file."""
    _allowed(owner_or_admin)
    with flow().db.reading() as db:
        found = next((r for r in definitions.decision_files(db) if r.name == name), None)
    if found is None:
        abort(404)
    return render_template(
        "editor.html", kind="dmn", name=name, content=found.content, version=None
    )


@blp.get("/definitions/<key>/edit")
def modeler_page(key: str) -> str:
    """The modeler on the latest version; checked and deployed through the API."""
    _allowed(owner_or_admin)
    with flow().db.reading() as db:
        try:
            xml = definitions.source(db, key)
        except TradeflowError:
            abort(404)
    return render_template("modeler.html", key=key, xml=xml)


@blp.get("/dashboard")
def dashboard() -> str:
    """The department's measures and where work waits, for owners, auditors and admins."""
    _allowed(oversees)
    query = analytics.ElementQuery(definition=request.args.get("definition") or None)
    with flow().db.reading() as db:
        figures = analytics.kpis(db, query, flow().clock.now())
        steps = analytics.elements(db, query, flow().clock.now())
        keys = [d.key for d in definitions.catalog(db)]
    return render_template(
        "dashboard.html", kpis=figures, steps=steps, keys=keys, chosen=query.definition
    )


@blp.get("/audit")
def audit_search() -> str:
    """Auditors (and admins, process owners) find instances to read their trails."""
    _allowed(oversees)
    args = request.args
    query = InstanceQuery(
        status=_status(args.get("status")),
        definition=args.get("definition") or None,
        business_key_prefix=args.get("business_key", "").strip() or None,
        data_contains=args.get("customer", "").strip() or None,
        started_from=_day(args.get("from")),
        started_before=_day(args.get("to"), next_day=True),
        limit=200,
    )
    with flow().db.reading() as db:
        found, total = instances.search(db, query)
        keys = [d.key for d in definitions.catalog(db)]
    return render_template(
        "audit.html", instances=found, total=total, keys=keys, args=args,
        statuses=[s.value for s in InstanceStatus],
    )  # fmt: skip


def _status(text: str | None) -> InstanceStatus | None:
    try:
        return InstanceStatus(text) if text else None
    except ValueError:
        return None


def _day(text: str | None, next_day: bool = False) -> datetime | None:
    """A YYYY-MM-DD from the search form, as the start of that day (or of the next) in UTC."""
    try:
        day = datetime.fromisoformat(text).replace(tzinfo=UTC) if text else None
    except ValueError:
        return None
    return day + timedelta(days=1) if day is not None and next_day else day


@blp.get("/instances/<int:instance_id>/audit.csv")
def audit_csv(instance_id: int) -> Response:
    """The instance's trail as CSV, with the hashes (verifiable elsewhere)."""
    check_can_read(instance_id)
    with flow().db.reading() as db:
        text = "".join(export.to_csv(export.events_for_export(db, instance_id=instance_id),
                                     columns=TRAIL_COLUMNS))  # fmt: skip
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename=instance-{instance_id}-audit.csv"},
    )

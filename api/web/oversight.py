"""The pages of those who oversee the work: process owners (processes, forms and decision
tables, edited and deployed), auditors (the audit search, a trail's CSV) and the
dashboard of measures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import abort, g, render_template, request
from werkzeug.wrappers import Response

from api.auth import oversees, owner_or_admin
from api.context import flow
from api.headers import allow_inline_styles
from api.views import check_can_read
from api.web import blp
from engine.audit import export
from engine.commands import InstanceQuery, reading
from engine.errors import TradeflowError
from engine.modeling import definitions
from engine.people import users
from engine.reporting import analytics
from engine.storage import InstanceStatus

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
    allow_inline_styles()
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
    allow_inline_styles()
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
    allow_inline_styles()
    with flow().db.reading() as db:
        try:
            xml = definitions.source(db, key)
        except TradeflowError:
            abort(404)
    return render_template("modeler.html", key=key, xml=xml)


# the dashboard's figures: (measure, figure field, how to show it, label: translated on
# the page, zh in translations/)
CARDS = [
    ("on_time_rate", "on_time_rate", "pct", "steps done within their time limit"),
    ("inquiry_response", "inquiry_response_p50", "hours", "median inquiry response"),
    ("quotation_turnaround", "quotation_turnaround_p50", "hours",
     "median quotation turnaround"),
    ("contract_to_shipped", "contract_to_shipped_p50", "days", "median contract to shipment"),
    ("shipped_to_paid", "shipped_to_paid_p50", "days", "median shipment to payment"),
    ("fulfilment_rate", "fulfilment_rate", "pct", "shipped by the promised date"),
    ("document_first_pass_rate", "document_first_pass_rate", "pct",
     "documents accepted at the first review"),
    ("overdue_collection_rate", "overdue_collection_rate", "pct", "invoices paid late"),
    ("bad_debt_rate", "bad_debt_rate", "pct", "invoices ending in bad debt"),
    ("complaint_rate", "complaint_rate", "pct", "orders with a complaint"),
    ("satisfaction_mean", "satisfaction_mean", "score", "mean satisfaction (1-5)"),
]  # fmt: skip


def _slice(args: Any) -> analytics.ElementQuery:
    """The dashboard's filters: process, dates (UTC days, inclusive), role, user, grade."""
    return analytics.ElementQuery(
        definition=args.get("definition") or None,
        since=_day(args.get("from")),
        until=_day(args.get("to"), next_day=True),
        role=args.get("role") or None,
        user=args.get("user", "").strip() or None,
        grade=args.get("grade") or None,
    )


@blp.get("/dashboard")
def dashboard() -> str:
    """The department's measures and where work waits, for owners, auditors and admins;
    each figure links to the instances behind it."""
    _allowed(oversees)
    query = _slice(request.args)
    with flow().db.reading() as db:
        figures = analytics.kpis(db, query, flow().clock.now(), flow().runtime.calendar.timezone)
        steps = analytics.elements(db, query, flow().clock.now())
        keys = [d.key for d in definitions.catalog(db)]
        roles = [role for role, _ in users.roles(db)]
    filters = {k: v for k, v in request.args.items() if v}
    return render_template(
        "dashboard.html", kpis=figures, steps=steps, keys=keys, args=request.args,
        filters=filters, cards=CARDS, roles=roles, grades=("A", "B", "C", "D"),
    )  # fmt: skip


@blp.get("/dashboard/instances")
def dashboard_instances() -> str:
    """The instances behind one figure (``measure``) or one step (``element``)."""
    _allowed(oversees)
    query = _slice(request.args)
    measure, element = request.args.get("measure"), request.args.get("element")
    with flow().db.reading() as db:
        if element:
            found = analytics.behind_element(db, element, query, flow().clock.now())
            title = element
        elif measure in analytics.MEASURES:
            found = analytics.behind(db, measure, query, flow().runtime.calendar.timezone)
            title = measure
        else:
            abort(404)
    kind = "late" if element else analytics.MEASURES[str(measure)].kind
    return render_template(
        "dashboard_instances.html", samples=found, title=title, kind=kind,
        filters={k: v for k, v in request.args.items() if v and k not in ("measure", "element")},
    )  # fmt: skip


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
        found, total = reading.search(db, query)
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

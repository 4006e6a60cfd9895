"""Case facts: for each instance, when it reached the milestones the department measures
(``../shared/DOMAIN.md``, "Measures") and the few answers the measures read (the order's
customer grade, the promised delivery date, whether the documents passed their first
review, the survey's score).

The unit of work keeps them: every audit event it writes goes past ``record`` in the same
transaction, and the few that mark a milestone set a column of the instance's row. The
KPIs then read one short row per order instead of replaying a trail of a million events
(bench/analytics.py). The trail stays the source of truth: ``rebuild`` replays it into
the same rows (the migration that added them does, and a test holds both ways equal).

The milestones name elements of the shipped diagrams (bpmn/); a diagram that renames one
must rename it here, or its measure goes blank.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, delete, insert, select

from engine.clock import as_utc
from engine.storage import AuditEvent, CaseChange, CaseFacts, Writes

Event = Mapping[Any, Any]  # an audit event row: kind, element_id, at, actor, data...
_TABLE: Table = CaseFacts.__table__  # type: ignore[assignment]  # Core: a Table


def _submitted(field_name: str) -> Callable[[Event, dict[str, Any]], Any]:
    def read(event: Event, data: dict[str, Any]) -> Any:
        submitted = data.get("submitted")
        return submitted.get(field_name) if isinstance(submitted, dict) else None

    return read


def _actor(event: Event, data: dict[str, Any]) -> Any:
    return event["actor"]


def _changed(variable: str) -> Callable[[Event, dict[str, Any]], Any]:
    """The value a variable took during the step (a decision table run right after it)."""

    def read(event: Event, data: dict[str, Any]) -> Any:
        change = (data.get("changes") or {}).get(variable)
        return change[1] if isinstance(change, list) and len(change) == 2 else None

    return read


def _score(event: Event, data: dict[str, Any]) -> int | None:
    text = str(_submitted("satisfaction")(event, data) or "")
    return int(text) if text.isdigit() else None


def _flag(field_name: str) -> Callable[[Event, dict[str, Any]], Any]:
    def read(event: Event, data: dict[str, Any]) -> bool | None:
        value = _submitted(field_name)(event, data)
        return None if value is None else bool(value)

    return read


def _text(field_name: str) -> Callable[[Event, dict[str, Any]], Any]:
    def read(event: Event, data: dict[str, Any]) -> str | None:
        value = _submitted(field_name)(event, data)
        return None if value in (None, "") else str(value)

    return read


@dataclass(frozen=True)
class Milestone:
    """An event that sets columns of its instance's row: ``first`` ones keep the first
    occurrence (a rework loop does not move them), the ``latest`` ones the last."""

    at: str | None = None  # column that takes the event's time (first occurrence)
    first: dict[str, Callable[[Event, dict[str, Any]], Any]] = field(default_factory=dict)
    latest: dict[str, Callable[[Event, dict[str, Any]], Any]] = field(default_factory=dict)


COMPLETED, TIMER = "task_completed", "timer_fired"
MILESTONES: dict[tuple[str, str], Milestone] = {
    (COMPLETED, "prepare_quotation"): Milestone(
        "quoted_at", first={"owner": _actor}, latest={"grade": _text("customer_grade")}
    ),
    (COMPLETED, "send_quotation"): Milestone("quote_sent_at"),
    (COMPLETED, "draft_contract"): Milestone(latest={"promised_date": _text("delivery_date")}),
    (COMPLETED, "sign_contract"): Milestone("signed_at"),
    (COMPLETED, "review_documents"): Milestone(
        "reviewed_at", first={"documents_first_pass": _flag("documents_ok")}
    ),
    (COMPLETED, "declare_customs"): Milestone("shipped_at"),
    (COMPLETED, "issue_invoice"): Milestone("invoiced_at"),
    (TIMER, "payment_overdue"): Milestone("overdue_at"),
    (COMPLETED, "write_off"): Milestone("paid_at"),
    (COMPLETED, "chase_payment"): Milestone(latest={"collection_outcome": _text("outcome")}),
    (COMPLETED, "satisfaction_survey"): Milestone(
        "surveyed_at", first={"satisfaction": _score, "complaint": _flag("complaint")}
    ),
    (COMPLETED, "screen_lead"): Milestone(
        first={"owner": _actor}, latest={"grade": _changed("grade")}
    ),
    (COMPLETED, "create_customer_record"): Milestone("customer_recorded_at"),
}
STARTED = "instance_started"


def _data(event: Event) -> dict[str, Any]:
    # the canonical text as stored and hashed, also for the unit of work's own events:
    # what ``record`` reads is then exactly what ``rebuild`` will read from the trail
    data = event["data"]
    found = json.loads(data) if isinstance(data, str) else data
    return found if isinstance(found, dict) else {}


def _changes(milestone: Milestone, event: Event) -> tuple[dict[str, Any], dict[str, Any]]:
    """(columns set only if still empty, columns overwritten) by one event."""
    data = _data(event)
    first = {name: read(event, data) for name, read in milestone.first.items()}
    if milestone.at is not None:
        first[milestone.at] = as_utc(event["at"])
    latest = {name: read(event, data) for name, read in milestone.latest.items()}
    return (
        {k: v for k, v in first.items() if v is not None},
        {k: v for k, v in latest.items() if v is not None},
    )


def _started(event: Event) -> dict[str, Any]:
    data = _data(event)
    return {
        "instance_id": event["instance_id"],
        "definition_key": data.get("definition") or event["element_id"],
        "business_key": data.get("business_key"),
        "started_at": as_utc(event["at"]),
    }


def record(writes: Writes, events: Iterable[Event]) -> None:
    """Apply the milestones among ``events`` (rows about to be written to the trail)."""
    for event in events:
        kind = event["kind"]
        if kind == STARTED:
            if event["instance_id"] is not None:
                writes.add_case(**_started(event))
            continue
        milestone = MILESTONES.get((kind, event["element_id"] or ""))
        if milestone is None or event["instance_id"] is None:
            continue
        first, latest = _changes(milestone, event)
        writes.change_case(CaseChange(event["instance_id"], first, latest))


def rebuild(conn: Connection) -> int:
    """Replay the trail into fresh rows (all instances); answers how many."""
    kinds = {STARTED, *(kind for kind, _ in MILESTONES)}
    rows: dict[int, dict[str, Any]] = {}
    stmt = (
        select(
            AuditEvent.instance_id,
            AuditEvent.kind,
            AuditEvent.element_id,
            AuditEvent.at,
            AuditEvent.actor,
            AuditEvent.data,
        )
        .where(AuditEvent.instance_id.is_not(None), AuditEvent.kind.in_(kinds))
        .order_by(AuditEvent.id)
    )
    for event in conn.execute(stmt).mappings():
        instance_id = event["instance_id"]
        if event["kind"] == STARTED:
            rows[instance_id] = _started(event)
            continue
        milestone = MILESTONES.get((event["kind"], event["element_id"] or ""))
        row = rows.get(instance_id)
        if milestone is None or row is None:
            continue
        first, latest = _changes(milestone, event)
        for name, value in first.items():
            row.setdefault(name, value)
        row.update(latest)
    conn.execute(delete(_TABLE))
    columns = [c.name for c in _TABLE.columns]
    batch = [{name: row.get(name) for name in columns} for row in rows.values()]
    for i in range(0, len(batch), 5000):
        conn.execute(insert(_TABLE), batch[i : i + 5000])
    return len(batch)

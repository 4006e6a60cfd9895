"""Case facts: for each instance, when it reached the milestones the department measures
(``../shared/DOMAIN.md``, "Measures") and the few answers the measures read (the order's
customer grade, the promised delivery date, whether the documents passed their first
review, the survey's score).

The unit of work keeps them: every audit event it writes goes past ``record`` in the same
transaction, and the few that mark a milestone set a column of the instance's row. The
KPIs then read one short row per order instead of replaying a trail of a million events
(bench/analytics.py). The trail stays the source of truth: ``rebuild`` replays it into
the same rows (the migration that added them does, and a test holds both ways equal).

Which events are milestones, and what each sets, is content, not engine: the trade
department's are declared beside its diagrams (trade/milestones.py) and loaded by name
(``TRADEFLOW_MILESTONES``). A diagram version that drops a milestone's element is
deployed with a warning (engine/modeling/definitions.py).
"""

from __future__ import annotations

import functools
import importlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, delete, insert, select

from engine.clock import as_utc
from engine.storage import AuditEvent, CaseChange, CaseFacts, Writes

Event = Mapping[Any, Any]  # an audit event row: kind, element_id, at, actor, data...
_TABLE: Table = CaseFacts.__table__  # type: ignore[assignment]  # Core: a Table


Reader = Callable[[Event, dict[str, Any]], Any]  # (event, its data) -> a column's value


def _submitted(field_name: str, event: Event, data: dict[str, Any]) -> Any:
    submitted = data.get("submitted")
    return submitted.get(field_name) if isinstance(submitted, dict) else None


def actor(event: Event, data: dict[str, Any]) -> Any:
    """Who completed the step."""
    return event["actor"]


def changed(variable: str) -> Reader:
    """The value a variable took during the step (a decision table run right after it)."""

    def read(event: Event, data: dict[str, Any]) -> Any:
        change = (data.get("changes") or {}).get(variable)
        return change[1] if isinstance(change, list) and len(change) == 2 else None

    return read


def score(field_name: str) -> Reader:
    """A submitted field read as a whole number (a survey's score)."""

    def read(event: Event, data: dict[str, Any]) -> int | None:
        found = str(_submitted(field_name, event, data) or "")
        return int(found) if found.isdigit() else None

    return read


def flag(field_name: str) -> Reader:
    """A submitted field read as yes or no."""

    def read(event: Event, data: dict[str, Any]) -> bool | None:
        value = _submitted(field_name, event, data)
        return None if value is None else bool(value)

    return read


def text(field_name: str) -> Reader:
    """A submitted field read as text (empty: nothing)."""

    def read(event: Event, data: dict[str, Any]) -> str | None:
        value = _submitted(field_name, event, data)
        return None if value in (None, "") else str(value)

    return read


@dataclass(frozen=True)
class Milestone:
    """An event that sets columns of its instance's row: ``first`` ones keep the first
    occurrence (a rework loop does not move them), the ``latest`` ones the last."""

    at: str | None = None  # column that takes the event's time (first occurrence)
    first: dict[str, Reader] = field(default_factory=dict)
    latest: dict[str, Reader] = field(default_factory=dict)


COMPLETED, TIMER = "task_completed", "timer_fired"
STARTED = "instance_started"
# (event kind, element id) -> what it sets
Milestones = Mapping[tuple[str, str], Milestone]
# the content that declares them: a module with a MILESTONES mapping (trade/milestones.py)
CONTENT = "TRADEFLOW_MILESTONES"
DEFAULT_CONTENT = "trade.milestones"


@functools.cache
def configured() -> Milestones:
    """The milestones of the content this process runs with (``TRADEFLOW_MILESTONES``,
    a module's name; the trade department's by default)."""
    name = os.environ.get(CONTENT, DEFAULT_CONTENT)
    found = getattr(importlib.import_module(name), "MILESTONES", None)
    if not isinstance(found, Mapping):
        raise RuntimeError(f"{CONTENT}={name}: the module has no MILESTONES mapping")
    problems = check(found)
    if problems:
        raise RuntimeError(f"{CONTENT}={name}: " + "; ".join(problems))
    return found


# what a milestone may set: the case facts' columns but the row's own key and start
_SETTABLE = {c.name for c in _TABLE.columns} - {
    "instance_id",
    "definition_key",
    "business_key",
    "started_at",
}


def check(milestones: Mapping[Any, Any]) -> list[str]:
    """What is wrong with a content's milestones, said before any command runs: a column
    the case facts lack would fail every completion of its element at the flush."""
    problems = []
    for key, milestone in milestones.items():
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key)):
            problems.append(f"{key!r}: a key is (event kind, element id)")
            continue
        if not isinstance(milestone, Milestone):
            problems.append(f"{key!r}: not a Milestone")
            continue
        if milestone.at is not None and not _is_time(milestone.at):
            problems.append(f"{key!r}: '{milestone.at}' is no time column of the case facts")
        for name, read in (*milestone.first.items(), *milestone.latest.items()):
            if name not in _SETTABLE:
                problems.append(f"{key!r}: the case facts have no column '{name}'")
            if not callable(read):
                problems.append(f"{key!r}: the reader of '{name}' is not callable")
    return problems


def _is_time(name: str) -> bool:
    column = _TABLE.columns.get(name)
    return name in _SETTABLE and column is not None and column.type.python_type is datetime


def milestone_elements(milestones: Milestones | None = None) -> dict[str, str]:
    """The elements that mark a milestone: element id -> what it sets (for warnings)."""
    found: dict[str, str] = {}
    for (_, element), milestone in (configured() if milestones is None else milestones).items():
        found[element] = ", ".join(
            [*filter(None, [milestone.at]), *milestone.first, *milestone.latest]
        )
    return found


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


def record(writes: Writes, events: Iterable[Event], milestones: Milestones | None = None) -> None:
    """Apply the milestones among ``events`` (rows about to be written to the trail)."""
    milestones = configured() if milestones is None else milestones
    for event in events:
        kind = event["kind"]
        if kind == STARTED:
            if event["instance_id"] is not None:
                writes.add_case(**_started(event))
            continue
        milestone = milestones.get((kind, event["element_id"] or ""))
        if milestone is None or event["instance_id"] is None:
            continue
        first, latest = _changes(milestone, event)
        writes.change_case(CaseChange(event["instance_id"], first, latest))


def rebuild(conn: Connection, milestones: Milestones | None = None) -> int:
    """Replay the trail into fresh rows (all instances); answers how many."""
    milestones = configured() if milestones is None else milestones
    kinds = {STARTED, *(kind for kind, _ in milestones)}
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
        milestone = milestones.get((event["kind"], event["element_id"] or ""))
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

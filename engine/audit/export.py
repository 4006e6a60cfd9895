"""The instances' audit trails for other tools: CSV, and XES (IEEE 1849-2016) for
process mining (ProM, pm4py, Disco...).

Events are read in instance then sequence order, a batch at a time (``yield_per``: a
server-side cursor on PostgreSQL), and written out as they come: the events never sit in
memory as objects. The API collects what is written (api/resources/audit.py: handed to
the server whole, so a slow reader holds no thread). The writers take any iterable of
``ExportEvent``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, NamedTuple
from xml.sax.saxutils import quoteattr

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.audit.trail import EventKind, canonical_data
from engine.clock import as_utc
from engine.storage import AuditEvent, Definition, Instance

BATCH = 500  # rows fetched at a time


class ExportEvent(NamedTuple):
    instance_id: int
    business_key: str | None
    definition: str
    version: int
    seq: int
    at: datetime
    actor: str
    kind: str
    element_id: str | None
    element_name: str | None
    role: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str


def events_for_export(
    session: Session,
    definition: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    instance_id: int | None = None,
) -> Iterator[ExportEvent]:
    """Every instance's events (streams ``instance:<id>``), by instance then seq;
    ``definition`` keeps one process key's instances (every version), ``since`` and
    ``until`` the events recorded in [since, until)."""
    stmt = (
        select(
            AuditEvent.instance_id,
            Instance.business_key,
            Definition.key,
            Definition.version,
            AuditEvent.seq,
            AuditEvent.at,
            AuditEvent.actor,
            AuditEvent.kind,
            AuditEvent.element_id,
            AuditEvent.element_name,
            AuditEvent.role,
            AuditEvent.data,
            AuditEvent.prev_hash,
            AuditEvent.hash,
        )
        .join(Instance, Instance.id == AuditEvent.instance_id)
        .join(Definition, Definition.id == Instance.definition_id)
        .where(AuditEvent.stream.startswith("instance:", autoescape=True))
    )
    if definition is not None:
        stmt = stmt.where(Definition.key == definition)
    if instance_id is not None:
        stmt = stmt.where(AuditEvent.instance_id == instance_id)
    if since is not None:  # in UTC: SQLite would compare the wall-clock digits
        stmt = stmt.where(AuditEvent.at >= as_utc(since))
    if until is not None:
        stmt = stmt.where(AuditEvent.at < as_utc(until))
    stmt = stmt.order_by(AuditEvent.instance_id, AuditEvent.seq).execution_options(yield_per=BATCH)
    for row in session.execute(stmt):
        yield ExportEvent._make(row)  # the join makes instance_id non-null


def timestamp(at: datetime) -> str:
    """ISO 8601 in UTC with its offset: 2026-11-27T09:00:00+00:00."""
    return as_utc(at).isoformat()


def chunks(parts: Iterable[str], size: int = 64 * 1024) -> Iterator[str]:
    """The parts joined into pieces of about ``size`` characters (fewer, larger writes)."""
    buffer: list[str] = []
    length = 0
    for part in parts:
        buffer.append(part)
        length += len(part)
        if length >= size:
            yield "".join(buffer)
            buffer, length = [], 0
    if buffer:
        yield "".join(buffer)


# --- CSV ---------------------------------------------------------------------------------

CSV_COLUMNS: tuple[str, ...] = (
    "instance_id",
    "business_key",
    "definition",
    "version",
    "seq",
    "at",
    "actor",
    "kind",
    "element_id",
    "element_name",
    "role",
    "data",
    "prev_hash",
    "hash",
)


def to_csv(events: Iterable[ExportEvent], columns: tuple[str, ...] = CSV_COLUMNS) -> Iterator[str]:
    """A header line, then one line per event (RFC 4180: CRLF, quoted as needed); ``at``
    as in ``timestamp``, ``data`` as the canonical JSON that was hashed, None as empty;
    ``columns`` chooses and orders the fields (one instance's trail needs fewer)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values: Iterable[Any]) -> str:
        writer.writerow(values)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(columns)
    for e in events:
        values = {**e._asdict(), "at": timestamp(e.at), "data": canonical_data(e.data)}
        yield line(values[c] for c in columns)


# --- XES ---------------------------------------------------------------------------------

# the standard lifecycle model's transition for each kind of event a trace keeps; the
# rest (unclaims, SLA breaches) are bookkeeping, not activity
LIFECYCLE: dict[str, str] = {
    EventKind.INSTANCE_STARTED: "complete",
    EventKind.TASK_CREATED: "schedule",
    EventKind.TASK_CLAIMED: "assign",
    EventKind.TASK_DELEGATED: "reassign",
    EventKind.TASK_COMPLETED: "complete",
    EventKind.TASK_CANCELLED: "ate_abort",
    EventKind.TIMER_FIRED: "complete",
    EventKind.MESSAGE_RECEIVED: "complete",
    EventKind.INSTANCE_COMPLETED: "complete",
    EventKind.INSTANCE_CANCELLED: "pi_abort",
    EventKind.INSTANCE_FAILED: "pi_abort",
}
# the instance's own events are activities of their own, not of the element they name
# (instance_started names the process)
INSTANCE_ACTIVITIES: dict[str, str] = {
    EventKind.INSTANCE_STARTED: "Instance started",
    EventKind.INSTANCE_COMPLETED: "Instance completed",
    EventKind.INSTANCE_CANCELLED: "Instance cancelled",
    EventKind.INSTANCE_FAILED: "Instance failed",
}

XES_NAMESPACE = "http://www.xes-standard.org/"
EXTENSIONS = (
    ("Concept", "concept", "http://www.xes-standard.org/concept.xesext"),
    ("Time", "time", "http://www.xes-standard.org/time.xesext"),
    ("Organizational", "org", "http://www.xes-standard.org/org.xesext"),
    ("Lifecycle", "lifecycle", "http://www.xes-standard.org/lifecycle.xesext"),
)

# XML 1.0 has no way to write these, not even as references
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _value(value: object) -> str:
    return quoteattr(_NOT_XML.sub("\ufffd", str(value)))


def _attribute(kind: str, key: str, value: object) -> str:
    return f"<{kind} key={_value(key)} value={_value(value)}/>"


def activity(event: ExportEvent) -> str:
    """The event's activity (concept:name): the instance's own, else the element's name
    (its id when unnamed), else the kind."""
    if event.kind in INSTANCE_ACTIVITIES:
        return INSTANCE_ACTIVITIES[event.kind]
    return event.element_name or event.element_id or event.kind


def _head() -> str:
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<log xmlns="{XES_NAMESPACE}" xes.version="1849-2016" xes.features="">',
    ]
    lines += [
        f'  <extension name="{name}" prefix="{prefix}" uri="{uri}"/>'
        for name, prefix, uri in EXTENSIONS
    ]
    lines += [
        '  <global scope="trace">',
        "    " + _attribute("string", "concept:name", "__INVALID__"),
        "  </global>",
        '  <global scope="event">',
        "    " + _attribute("string", "concept:name", "__INVALID__"),
        "    " + _attribute("date", "time:timestamp", "1970-01-01T00:00:00+00:00"),
        "    " + _attribute("string", "lifecycle:transition", "complete"),
        "    " + _attribute("string", "org:resource", "__INVALID__"),
        "  </global>",
        '  <classifier name="Activity" keys="concept:name"/>',
        '  <classifier name="Activity and transition" keys="concept:name lifecycle:transition"/>',
        '  <classifier name="Resource" keys="org:resource"/>',
        "  " + _attribute("string", "concept:name", "Tradeflow audit trail"),
        "  " + _attribute("string", "lifecycle:model", "standard"),
    ]
    return "\n".join(lines) + "\n"


def _trace_head(event: ExportEvent) -> str:
    name = event.business_key if event.business_key else str(event.instance_id)
    return (
        "  <trace>\n"
        f"    {_attribute('string', 'concept:name', name)}\n"
        f"    {_attribute('int', 'instance_id', event.instance_id)}\n"
        f"    {_attribute('string', 'definition', event.definition)}\n"
        f"    {_attribute('int', 'version', event.version)}\n"
    )


def _event(event: ExportEvent, transition: str) -> str:
    attributes = [
        _attribute("string", "concept:name", activity(event)),
        _attribute("date", "time:timestamp", timestamp(event.at)),
        _attribute("string", "lifecycle:transition", transition),
        _attribute("string", "org:resource", event.actor),
    ]
    if event.role is not None:
        attributes.append(_attribute("string", "org:role", event.role))
    attributes.append(_attribute("string", "kind", event.kind))
    if event.element_id is not None:
        attributes.append(_attribute("string", "element_id", event.element_id))
    attributes.append(_attribute("int", "seq", event.seq))
    attributes.append(_attribute("string", "hash", event.hash))
    return "    <event>\n" + "".join(f"      {a}\n" for a in attributes) + "    </event>\n"


def to_xes(events: Iterable[ExportEvent]) -> Iterator[str]:
    """An XES document: one trace per instance (events grouped by instance, as
    ``events_for_export`` orders them), named by its business key (its id without one),
    with an event per activity (``LIFECYCLE``) in the order recorded."""
    yield _head()
    current: int | None = None
    for event in events:
        transition = LIFECYCLE.get(event.kind)
        if transition is None:
            continue  # a trace opens at its first activity: none is left empty
        if event.instance_id != current:
            if current is not None:
                yield "  </trace>\n"
            current = event.instance_id
            yield _trace_head(event)
        yield _event(event, transition)
    if current is not None:
        yield "  </trace>\n"
    yield "</log>\n"

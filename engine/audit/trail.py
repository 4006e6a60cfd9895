"""The audit trail: append-only events, hash-chained per stream.

Each instance has its own stream (``instance:<id>``) and deployments share
``definitions``. A command holds its instance's row lock while it appends, so a stream
never forks; the unique (stream, seq) index catches anyone who tries anyway. Database
triggers refuse UPDATE and DELETE on the table (and REPLACE on SQLite).

Every stream's head (its last seq and hash) is recorded in the same transaction as its
events: an instance stream's on the instance row, which the unit of work writes anyway;
a shared stream's in ``audit_head``. Verify (engine/audit/verification.py) compares each chain's
end with it, so the newest events cannot be deleted unnoticed unless the head is rewritten
too; anchors written outside the database (engine/audit/anchors.py) cover that.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.orm import Session

from engine.clock import as_utc
from engine.reporting import facts
from engine.storage import AuditEvent, AuditHead, Writes, locks

GENESIS = "0" * 64
DEFINITIONS_STREAM = "definitions"
MESSAGES_STREAM = "messages"
SIGN_IN_STREAM = "sign-in"  # lockouts of accounts and addresses (engine/people/sign_in.py)


class EventKind(enum.StrEnum):
    INSTANCE_STARTED = "instance_started"
    TASK_CREATED = "task_created"
    TASK_CLAIMED = "task_claimed"
    TASK_UNCLAIMED = "task_unclaimed"
    TASK_DELEGATED = "task_delegated"
    TASK_COMPLETED = "task_completed"
    TASK_CANCELLED = "task_cancelled"
    MESSAGE_RECEIVED = "message_received"
    MESSAGE_BUFFERED = "message_buffered"
    MESSAGE_EXPIRED = "message_expired"
    TIMER_FIRED = "timer_fired"
    SLA_BREACHED = "sla_breached"
    INSTANCE_COMPLETED = "instance_completed"
    INSTANCE_CANCELLED = "instance_cancelled"
    INSTANCE_FAILED = "instance_failed"
    DEFINITION_DEPLOYED = "definition_deployed"
    DECISION_DEPLOYED = "decision_deployed"
    SIGN_IN_LOCKED = "sign_in_locked"


INSTANCE_PREFIX = "instance:"


def instance_stream(instance_id: int) -> str:
    return f"{INSTANCE_PREFIX}{instance_id}"


def instance_of(stream: str) -> int | None:
    """The instance id of an instance stream; None for a shared stream."""
    if not stream.startswith(INSTANCE_PREFIX):
        return None
    digits = stream[len(INSTANCE_PREFIX) :]
    return int(digits) if digits.isdigit() else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_data(data: Any) -> str:
    """Event data as canonical JSON text: what is hashed, and stored as it is."""
    try:
        return json.dumps(
            data, default=_jsonable, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
    except TypeError:  # keys of mixed types cannot be sorted until they are strings
        return _canonical(json.loads(json.dumps(data, default=_jsonable)))


def canonical_at(at: datetime) -> str:
    moment = as_utc(at)
    if moment.year < 1000:  # strftime's %Y does not pad the year; isoformat does
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # the same text as that strftime, in a third of the time
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


COLUMNS = (
    "stream",
    "seq",
    "instance_id",
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
_HASHED = tuple(c for c in COLUMNS if c not in ("at", "prev_hash", "hash"))


# the hashed fields in the order sort_keys puts them, "data" among them
_BODY_KEYS = tuple(sorted((*_HASHED, "at")))
_BODY_PREFIXES = tuple(("{" if n == 0 else ",") + f'"{k}":' for n, k in enumerate(_BODY_KEYS))


def _scalar(value: Any) -> str:
    """A field's canonical JSON: what json.dumps(..., ensure_ascii=False) writes."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if kind is int:
        return int.__repr__(value)
    return _canonical(value)


def event_hash(event: AuditEvent | dict[str, Any], data_text: str | None = None) -> str:
    """SHA-256 over prev_hash and the canonical JSON of the event's content: the sorted
    fields, no spaces, not ASCII-escaped (tests/engine/audit/test_audit.py holds it equal to
    json.dumps of the whole body, which it spells out field by field, a third faster).

    ``data_text``, the data's canonical JSON when the caller has it, is used as it is
    rather than encoded again: the result is the same text either way."""
    row = event if isinstance(event, dict) else {c: getattr(event, c) for c in COLUMNS}
    parts = []
    for prefix, key in zip(_BODY_PREFIXES, _BODY_KEYS, strict=True):
        if key == "data":
            text = data_text if data_text is not None else _canonical(row["data"])
        elif key == "at":
            text = f'"{canonical_at(row["at"])}"'
        else:
            text = _scalar(row[key])
        parts.append(prefix)
        parts.append(text)
    parts.append("}")
    canonical = "".join(parts)
    return hashlib.sha256((row["prev_hash"] + canonical).encode()).hexdigest()


class AuditTrail:
    """Appends events to streams within the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._heads: dict[str, tuple[int, str]] = {}
        self._pending: list[dict[str, Any]] = []
        # shared streams read here: the seq their audit_head row holds (-1: no row yet)
        self._recorded: dict[str, int] = {}
        # shared streams: the time of their last event; a new one is never stamped before
        # it (a clock stepped back); an instance's stream has its floor from the unit
        self._floors: dict[str, datetime] = {}

    def seed(self, stream: str, seq: int, hash_: str) -> None:
        """Start from a known head (an instance row keeps its own) instead of querying."""
        self._heads[stream] = (seq, hash_ if seq else GENESIS)

    def head(self, stream: str) -> tuple[int, str]:
        return self._head(stream)

    def _head(self, stream: str) -> tuple[int, str]:
        if stream not in self._heads:
            # Shared streams (deployments, messages) have no row to lock; writers of a
            # stream queue here until commit.
            locks.queue_writers(self.session, stream)
            recorded = None
            if instance_of(stream) is None:  # a shared stream: its head has a row
                recorded = self.session.execute(
                    select(AuditHead.seq, AuditHead.hash).where(AuditHead.stream == stream)
                ).first()
                self._recorded[stream] = recorded[0] if recorded else -1
                if recorded:
                    last_at = self.session.scalar(
                        select(AuditEvent.at).where(
                            AuditEvent.stream == stream, AuditEvent.seq == recorded[0]
                        )
                    )
                    if last_at is not None:
                        self._floors[stream] = as_utc(last_at)
            last = (
                recorded
                or self.session.execute(
                    select(AuditEvent.seq, AuditEvent.hash)
                    .where(AuditEvent.stream == stream)
                    .order_by(AuditEvent.seq.desc())
                    .limit(1)
                ).first()
            )
            self._heads[stream] = (last[0], last[1]) if last else (0, GENESIS)
        return self._heads[stream]

    def append(
        self,
        stream: str,
        kind: EventKind,
        *,
        at: datetime,
        actor: str,
        instance_id: int | None = None,
        element_id: str | None = None,
        element_name: str | None = None,
        role: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        seq, prev = self._head(stream)
        at = as_utc(at)
        floor = self._floors.get(stream)
        if floor is not None and at < floor:
            at = floor
        if instance_of(stream) is None:
            self._floors[stream] = at
        text = canonical_data(data or {})
        row: dict[str, Any] = {
            "stream": stream,
            "seq": seq + 1,
            "instance_id": instance_id,
            "at": at,
            "actor": actor,
            "kind": kind.value,
            "element_id": element_id,
            "element_name": element_name,
            "role": role,
            "data": text,
            "prev_hash": prev,
        }
        row["hash"] = event_hash(row, text)
        self._pending.append(row)
        self._heads[stream] = (row["seq"], row["hash"])
        return row

    def write(self, writes: Writes | None = None) -> None:
        """Hand what was appended to the unit's pending writes (the unit flushes them);
        without one, insert it now. Call it before the commit."""
        if self._pending:
            rows, self._pending = self._pending, []
            own = writes is None
            writes = writes or Writes(self.session.connection())
            writes.add_events(rows)
            facts.record(writes, rows)  # the measures' summary rows, in the same transaction
            if own:
                writes.flush()
        if self._recorded:  # shared streams only: a unit of work on an instance skips this
            self._record_heads()

    def _record_heads(self) -> None:
        """Move the shared streams' recorded heads to where their events now end."""
        for stream, recorded in self._recorded.items():
            seq, hash_ = self._heads[stream]
            if seq <= max(recorded, 0):
                continue
            if recorded < 0:
                self.session.execute(insert(AuditHead).values(stream=stream, seq=seq, hash=hash_))
            else:
                self.session.execute(
                    update(AuditHead).where(AuditHead.stream == stream).values(seq=seq, hash=hash_)
                )
            self._recorded[stream] = seq


TABLE: Table = AuditEvent.__table__  # type: ignore[assignment]


def streams(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEvent.stream).distinct().order_by(AuditEvent.stream)))


@dataclass(frozen=True)
class AuditQuery:
    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    kind: str | None = None
    definition: str | None = None  # a process key: its instances' events and its deployments
    limit: int = 100
    offset: int = 0


def search(session: Session, query: AuditQuery) -> tuple[list[AuditEvent], int]:
    """Events across every stream, oldest first."""
    from engine.storage import Definition, Instance  # the trail itself needs neither

    stmt = select(AuditEvent)
    if query.since is not None:  # in UTC: SQLite would compare the wall-clock digits
        stmt = stmt.where(AuditEvent.at >= as_utc(query.since))
    if query.until is not None:
        stmt = stmt.where(AuditEvent.at < as_utc(query.until))
    if query.actor is not None:
        stmt = stmt.where(AuditEvent.actor == query.actor)
    if query.kind is not None:
        stmt = stmt.where(AuditEvent.kind == query.kind)
    if query.definition is not None:
        of_key = (
            select(Instance.id)
            .join(Definition, Definition.id == Instance.definition_id)
            .where(Definition.key == query.definition)
        )
        stmt = stmt.where(
            AuditEvent.instance_id.in_(of_key)
            | (
                (AuditEvent.stream == DEFINITIONS_STREAM)
                & (AuditEvent.element_id == query.definition)
            )
        )
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(AuditEvent.at, AuditEvent.id).limit(query.limit).offset(query.offset)
    ).all()
    return list(rows), total

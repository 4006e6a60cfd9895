"""Verifying the audit trail.

Each stream is walked from its first event: every seq present, every ``prev_hash`` the
hash of the event before, every hash the hash of its event's content. Its end is then held
against the head the database records for it (an instance row's ``audit_seq`` and
``audit_hash``, or a shared stream's ``audit_head`` row): so deleting the newest events, a
whole stream, or editing an event and recomputing every later hash is reported, unless
whoever did it rewrote the recorded head as well. Events whose instance row is gone, and
instance rows whose events are gone, are reported too.

Anchors (engine/audit/anchors.py) pin events outside the database: given their pins, every
anchored event must still be there with its anchored hash, and every anchored stream must
still exist. That holds even against someone who rewrote the chain and the heads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import Select, Text, select, type_coerce
from sqlalchemy.orm import Session

from engine.audit.trail import COLUMNS, GENESIS, TABLE, event_hash, instance_of, instance_stream
from engine.storage import AuditHead, Database, Instance, locks

CHECKS = (
    "every event's link to the one before and its hash, from each stream's first event",
    "each stream's end against the head its instance row (or audit_head) records",
    "instance rows without events, and events without an instance row",
)


@dataclass(frozen=True)
class Finding:
    """What is wrong, and where."""

    stream: str
    seq: int | None
    reason: str

    def __str__(self) -> str:
        where = f"broken at seq {self.seq}" if self.seq is not None else "broken"
        return f"{self.stream}: {where}: {self.reason}"


@dataclass(frozen=True)
class Pin:
    """An event an anchor listed as its stream's head."""

    hash: str
    anchor: int  # the anchor's number


# stream -> seq -> pin
Pins = Mapping[str, Mapping[int, Pin]]


@dataclass(frozen=True)
class Verification:
    """One stream checked. ``broken_seq`` and ``reason`` are its first finding's."""

    stream: str
    events: int
    ok: bool
    broken_seq: int | None = None
    reason: str | None = None
    recorded_seq: int | None = None  # the head the database records; None: none recorded
    pinned: int = 0  # anchored events found as anchored
    findings: tuple[Finding, ...] = ()


@dataclass
class TrailReport:
    """Every stream checked."""

    streams: list[Verification] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    events: int = 0
    pinned: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, result: Verification) -> None:
        """Count one stream's check in."""
        self.streams.append(result)
        self.findings.extend(result.findings)
        self.events += result.events
        self.pinned += result.pinned


@contextmanager
def snapshot(db: Database) -> Iterator[Session]:
    """A read transaction that sees one moment, so the trail and the heads read in it
    agree (PostgreSQL's READ COMMITTED would take a new snapshot per statement, and a
    unit of work committed between them would look like a cut)."""
    with db.reading() as session:
        locks.read_one_moment(session)
        yield session


def recorded_heads(session: Session) -> dict[str, tuple[int, str]]:
    """Every stream's head as the database records it: instance rows, then audit_head."""
    heads = {
        instance_stream(i): (seq, hash_)
        for i, seq, hash_ in session.execute(
            select(Instance.id, Instance.audit_seq, Instance.audit_hash)
        )
    }
    for stream, seq, hash_ in session.execute(
        select(AuditHead.stream, AuditHead.seq, AuditHead.hash)
    ):
        if instance_of(stream) is None:  # an instance's head is its row's, whatever is here
            heads[stream] = (seq, hash_)
    return heads


def recorded_head(session: Session, stream: str) -> tuple[int, str] | None:
    instance_id = instance_of(stream)
    if instance_id is not None:
        found = session.execute(
            select(Instance.audit_seq, Instance.audit_hash).where(Instance.id == instance_id)
        ).first()
    else:
        found = session.execute(
            select(AuditHead.seq, AuditHead.hash).where(AuditHead.stream == stream)
        ).first()
    return (found[0], found[1]) if found else None


# the data as stored (it is the text that was hashed): no JSON parsing, no re-encoding
_ROWS: Select[Any] = select(
    *(type_coerce(TABLE.c.data, Text()) if c == "data" else TABLE.c[c] for c in COLUMNS)
)
_STREAM, _SEQ, _INSTANCE, _PREV, _HASH = (COLUMNS.index(c) for c in (
    "stream", "seq", "instance_id", "prev_hash", "hash"))  # fmt: skip


def verify_stream(session: Session, stream: str, pins: Pins | None = None) -> Verification:
    """Walk one stream and hold its end against its recorded head (and its pins)."""
    rows = session.execute(_ROWS.where(TABLE.c.stream == stream).order_by(TABLE.c.seq))
    return _walk(stream, rows, recorded_head(session, stream), (pins or {}).get(stream))


def verify_trail(session: Session, pins: Pins | None = None) -> TrailReport:
    """Every stream, in one pass over the trail in (stream, seq) order; then the streams
    that the heads or the anchors know of and the trail no longer has."""
    pins = pins or {}
    heads = recorded_heads(session)
    report = TrailReport()
    rows = session.execute(
        _ROWS.order_by(TABLE.c.stream, TABLE.c.seq).execution_options(yield_per=5000)
    )
    seen = set()
    for stream, events in groupby(rows, key=itemgetter(_STREAM)):
        seen.add(stream)
        report.add(_walk(stream, events, heads.get(stream), pins.get(stream)))
    for stream in sorted((heads.keys() | pins.keys()) - seen):
        report.add(_walk(stream, (), heads.get(stream), pins.get(stream)))
    return report


def _walk(
    stream: str,
    rows: Iterable[Sequence[Any]],
    recorded: tuple[int, str] | None,
    pins: Mapping[int, Pin] | None,
) -> Verification:
    findings: list[Finding] = []
    owner = instance_of(stream)
    prev, expected, intact = GENESIS, 1, True
    count = pinned = 0
    last: tuple[int, str] | None = None
    for row in rows:
        count += 1
        seq, hash_ = row[_SEQ], row[_HASH]
        if intact:  # past the first break the links mean nothing; the pins still do
            reason = None
            if seq != expected:
                seq, reason = expected, "event missing"
            elif row[_PREV] != prev:
                reason = "prev_hash does not link"
            elif event_hash(event := dict(zip(COLUMNS, row, strict=True)), event["data"]) != hash_:
                reason = "hash does not match content"
            elif row[_INSTANCE] != owner:
                reason = f"instance_id {row[_INSTANCE]} is not the stream's"
            if reason is not None:
                findings.append(Finding(stream, seq, reason))
                intact = False
            prev, expected = hash_, expected + 1
        if pins:
            pin = pins.get(row[_SEQ])
            if pin is not None:
                if pin.hash == hash_:
                    pinned += 1
                else:
                    findings.append(Finding(stream, row[_SEQ], _rewritten(pin, hash_)))
        last = (row[_SEQ], hash_)
    findings += _against_head(stream, last, recorded, owner is not None)
    findings += _against_pins(stream, last, pins)
    findings.sort(key=lambda f: (f.seq is None, f.seq or 0))
    first = findings[0] if findings else None
    return Verification(
        stream,
        count,
        not findings,
        first.seq if first else None,
        first.reason if first else None,
        recorded[0] if recorded else None,
        pinned,
        tuple(findings),
    )


def _rewritten(pin: Pin, now: str) -> str:
    return (
        f"not the event anchor {pin.anchor} pinned (hash {pin.hash[:12]}..., now "
        f"{now[:12]}...): rewritten after that anchor"
    )


def _against_head(
    stream: str, last: tuple[int, str] | None, recorded: tuple[int, str] | None, instance: bool
) -> list[Finding]:
    """The chain's end against the head the database records for the stream."""
    source = "instance row" if instance else "audit_head row"
    if recorded is None:
        if last is None:
            return []  # known only to an anchor: _against_pins speaks
        if instance:
            return [Finding(stream, None, "events without an instance row: the row is gone")]
        return [Finding(stream, None, "no recorded head: audit_head has no row for it")]
    seq, hash_ = recorded
    end = last[0] if last else 0
    if instance and seq == 0:
        reason = "the instance row records no events (every instance has instance_started)"
        return [Finding(stream, None, reason + ": its head was reset")]
    if end < seq:
        if last is None:
            reason = f"stream missing: the {source} records {seq} events, the trail has none"
            return [Finding(stream, 1, reason)]
        reason = f"events {end + 1} to {seq} missing: the {source} records the head at seq {seq}"
        return [Finding(stream, end + 1, reason + " (the newest were deleted)")]
    if end > seq:
        reason = f"events {seq + 1} to {end} lie past the head the {source} records (seq {seq})"
        return [Finding(stream, seq + 1, reason)]
    if last is not None and last[1] != hash_:
        reason = f"the last event's hash is not the head the {source} records"
        return [Finding(stream, end, reason + ": the chain was rewritten")]
    return []


def _against_pins(
    stream: str, last: tuple[int, str] | None, pins: Mapping[int, Pin] | None
) -> list[Finding]:
    """Anchored events past the chain's end: cut off (or the whole stream gone)."""
    end = last[0] if last else 0
    beyond = [seq for seq in pins or () if seq > end]
    if not pins or not beyond:
        return []
    seq = max(beyond)
    anchor = pins[seq].anchor
    if last is None:
        return [Finding(stream, 1, f"stream missing: anchor {anchor} pinned it at seq {seq}")]
    reason = f"events cut: anchor {anchor} pinned seq {seq}, the trail ends at seq {end}"
    return [Finding(stream, end + 1, reason)]

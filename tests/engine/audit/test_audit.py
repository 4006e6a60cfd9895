"""The audit trail: complete, hash-chained, append-only, and verifiable."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Text, delete, select, text, type_coerce, update
from sqlalchemy.exc import DBAPIError

from engine.audit import DEFINITIONS_STREAM, GENESIS, MESSAGES_STREAM, verification
from engine.audit.trail import COLUMNS, canonical_at, canonical_data, event_hash
from engine.audit.verification import TrailReport
from engine.clock import as_utc
from engine.storage import AuditEvent, Database
from engine.tradeflow import Tradeflow
from tests.engine.conftest import Scenario, read


def _reviewed(scenario: Scenario) -> int:
    iid = scenario.flow.start("document_review", actor="clerk", business_key="SO-1")
    scenario.complete(iid, "prepare_documents", by="clerk", invoice_number="INV-1")
    scenario.complete(
        iid,
        "review_documents",
        by="checker",
        documents_ok=False,
        review_comment="B/L number missing",
    )
    scenario.complete(
        iid, "prepare_documents", by="clerk", invoice_number="INV-1", bill_of_lading_number="BL-9"
    )
    scenario.complete(iid, "review_documents", by="checker", documents_ok=True)
    return iid


def test_every_step_is_recorded_with_who_and_what(scenario: Scenario) -> None:
    iid = _reviewed(scenario)
    events = scenario.flow.history(iid)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.kind for e in events] == [
        "instance_started",
        "task_created",
        "task_claimed",
        "task_completed",
        "task_created",
        "task_claimed",
        "task_completed",
        "task_created",
        "task_claimed",
        "task_completed",
        "task_created",
        "task_claimed",
        "task_completed",
        "instance_completed",
    ]
    review = events[6]
    assert (review.actor, review.element_id, review.element_name, review.role) == (
        "checker",
        "review_documents",
        "Review documents",
        "risk_compliance",
    )
    assert review.data["submitted"] == {
        "documents_ok": False,
        "review_comment": "B/L number missing",
    }
    assert review.data["changes"]["documents_ok"] == [None, False]
    second_prep = events[9]
    assert second_prep.data["changes"] == {"bill_of_lading_number": [None, "BL-9"]}
    assert {as_utc(e.at) for e in events} == {scenario.flow.clock.now()}  # UTC, from the clock


def test_the_chain_links_and_hashes_each_event(scenario: Scenario) -> None:
    iid = _reviewed(scenario)
    events = scenario.flow.history(iid)
    prev = GENESIS
    for event in events:
        assert event.prev_hash == prev
        body = {
            "stream": event.stream,
            "seq": event.seq,
            "instance_id": event.instance_id,
            "at": canonical_at(event.at),
            "actor": event.actor,
            "kind": event.kind,
            "element_id": event.element_id,
            "element_name": event.element_name,
            "role": event.role,
            "data": event.data,
        }
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert event.hash == hashlib.sha256((prev + canonical).encode()).hexdigest()
        prev = event.hash
    assert scenario.flow.verify(f"instance:{iid}").ok
    deployed = scenario.flow.verify(DEFINITIONS_STREAM)
    assert deployed.ok and deployed.events == 5  # one per shipped process and decision


def test_the_database_refuses_to_rewrite_history(scenario: Scenario) -> None:
    iid = _reviewed(scenario)
    for statement in (
        update(AuditEvent).where(AuditEvent.instance_id == iid).values(actor="someone else"),
        delete(AuditEvent).where(AuditEvent.instance_id == iid),
    ):
        with (
            pytest.raises(DBAPIError, match="append-only"),
            scenario.flow.db.transaction() as session,
        ):
            session.execute(statement)
    assert scenario.flow.verify(f"instance:{iid}").ok


def _bypass_triggers(scenario: Scenario, statement: str) -> None:
    """What an attacker with DBA rights could do; verify must still notice."""
    db = scenario.flow.db
    with db.engine.begin() as conn:
        if db.is_postgres:
            conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
            conn.execute(text(statement))
            conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER audit_event_no_update"))
            conn.execute(text("DROP TRIGGER audit_event_no_delete"))
            conn.execute(text(statement))


@pytest.mark.parametrize(
    ("statement", "seq", "reason"),
    [
        ("UPDATE audit_event SET actor = 'mallory' WHERE seq = 6", 6, "hash does not match"),
        ("DELETE FROM audit_event WHERE seq = 4", 4, "event missing"),
        ("UPDATE audit_event SET prev_hash = hash WHERE seq = 9", 9, "prev_hash"),
    ],
)
def test_verify_reports_the_first_broken_link(
    scenario: Scenario, statement: str, seq: int, reason: str
) -> None:
    iid = _reviewed(scenario)
    _bypass_triggers(scenario, statement + f" AND stream = 'instance:{iid}'")
    result = scenario.flow.verify(f"instance:{iid}")
    assert not result.ok
    assert result.broken_seq == seq
    assert reason in (result.reason or "")


def test_event_data_is_stored_exactly_as_hashed(scenario: Scenario) -> None:
    iid = _reviewed(scenario)
    with scenario.flow.db.reading() as session:
        rows = (
            session.execute(
                text("SELECT data FROM audit_event WHERE stream = :s ORDER BY seq"),
                {"s": f"instance:{iid}"},
            )
            .scalars()
            .all()
        )
    for raw, event in zip(rows, scenario.flow.history(iid), strict=True):
        assert raw == json.dumps(
            event.data, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )


_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)  # no lone surrogates


@settings(max_examples=300, deadline=None)
@given(
    stream=_TEXT,
    seq=st.integers(min_value=-(2**70), max_value=2**70),
    instance_id=st.none() | st.integers(),
    at=st.datetimes(min_value=datetime(1, 1, 2), timezones=st.none() | st.just(UTC)),
    actor=_TEXT,
    kind=_TEXT,
    element_id=st.none() | _TEXT,
    element_name=st.none() | _TEXT,
    role=st.none() | _TEXT,
    data=st.dictionaries(_TEXT, st.none() | st.integers() | _TEXT | st.booleans(), max_size=4),
    prev=st.sampled_from([GENESIS, "ab" * 32]),
)
def test_the_hash_is_sha256_over_the_sorted_json_of_the_event(
    stream: str,
    seq: int,
    instance_id: int | None,
    at: datetime,
    actor: str,
    kind: str,
    element_id: str | None,
    element_name: str | None,
    role: str | None,
    data: dict[str, Any],
    prev: str,
) -> None:
    """event_hash spells the canonical JSON out field by field: it must be, byte for byte,
    json.dumps of the whole body with sorted keys, no spaces, no ASCII escapes, and the
    time as strftime writes it, whatever the text, number or year."""
    row = {
        "stream": stream, "seq": seq, "instance_id": instance_id, "at": at, "actor": actor,
        "kind": kind, "element_id": element_id, "element_name": element_name, "role": role,
        "data": data, "prev_hash": prev,
    }  # fmt: skip
    body = {k: v for k, v in row.items() if k != "prev_hash"}
    body["at"] = as_utc(at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256((prev + canonical).encode()).hexdigest()
    assert event_hash(row) == expected
    assert event_hash(row, canonical_data(data)) == expected
    assert canonical_at(at) == body["at"]


# What a database owner can do: triggers and foreign keys out of the way (the trail's own
# refusals are tested above). Verify must still say what was done, and where.


def as_owner(db: Database, *statements: tuple[str, dict[str, Any]]) -> None:
    """Run statements as the database's owner: on PostgreSQL with triggers (foreign keys
    among them) off for the transaction; on SQLite from a plain sqlite3 connection, which
    has foreign keys off, after dropping every trigger."""
    if db.is_postgres:
        with db.engine.begin() as conn:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            for sql, params in statements:
                conn.execute(text(sql), params)
        return
    with closing(sqlite3.connect(str(db.engine.url.database))) as conn:
        triggers = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        for (name,) in triggers.fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        for sql, params in statements:
            conn.execute(sql, params)
        conn.commit()


def rewrite(db: Database, stream: str, seq: int, **changes: Any) -> tuple[int, str]:
    """Change event ``seq`` and recompute every later hash, as someone covering their
    tracks would; the new head (seq, hash). The instance row's head is left alone."""
    columns = [AuditEvent.__table__.c[c] for c in COLUMNS]
    with db.reading() as session:
        rows = [
            dict(r._mapping)
            for r in session.execute(
                select(*columns, type_coerce(AuditEvent.__table__.c.data, Text()).label("raw"))
                .where(AuditEvent.stream == stream)
                .order_by(AuditEvent.seq)
            )
        ]
    prev, updates = GENESIS, []
    for row in rows:
        row["data"] = row.pop("raw")
        if row["seq"] == seq:
            row.update(changes)
        if row["seq"] >= seq:
            row["prev_hash"] = prev
            row["hash"] = event_hash(row, row["data"])
            sql = (
                "UPDATE audit_event SET actor = :actor, data = :data, prev_hash = :prev_hash, "
                "hash = :hash WHERE stream = :stream AND seq = :seq"
            )
            keys = ("actor", "data", "prev_hash", "hash", "stream", "seq")
            updates.append((sql, {k: row[k] for k in keys}))
        prev = row["hash"]
    as_owner(db, *updates)
    return rows[-1]["seq"], prev


def _report(flow: Tradeflow) -> TrailReport:
    with verification.snapshot(flow.db) as session:
        return verification.verify_trail(session)


def test_a_whole_intact_trail_verifies_in_one_pass(scenario: Scenario) -> None:
    iid = _reviewed(scenario)
    other = scenario.flow.start("payment_collection", actor="cashier", business_key="SO-1")
    scenario.flow.correlate("payment_received", actor="bank", business_key="SO-1")  # kept
    report = _report(scenario.flow)
    assert report.ok, report.findings
    by_stream = {r.stream: r for r in report.streams}
    assert set(by_stream) == {
        f"instance:{iid}",
        f"instance:{other}",
        DEFINITIONS_STREAM,
        MESSAGES_STREAM,
    }
    assert (by_stream[f"instance:{iid}"].events, by_stream[f"instance:{iid}"].recorded_seq) == (
        14,
        14,
    )
    assert by_stream[MESSAGES_STREAM].recorded_seq == 1  # audit_head, written with the event
    assert report.events == 14 + by_stream[f"instance:{other}"].events + 5 + 1


def test_verify_reports_the_newest_events_deleted(scenario: Scenario) -> None:
    iid = _reviewed(scenario)
    stream = f"instance:{iid}"
    as_owner(
        scenario.flow.db, ("DELETE FROM audit_event WHERE stream = :s AND seq >= 13", {"s": stream})
    )
    result = scenario.flow.verify(stream)
    assert (result.ok, result.events, result.broken_seq, result.recorded_seq) == (False, 12, 13, 14)
    assert result.reason == (
        "events 13 to 14 missing: the instance row records the head at seq 14 (the newest "
        "were deleted)"
    )
    assert [str(f) for f in _report(scenario.flow).findings] == [
        f"{stream}: broken at seq 13: {result.reason}"
    ]


def test_verify_reports_a_whole_stream_deleted(scenario: Scenario) -> None:
    iid = _reviewed(scenario)
    stream = f"instance:{iid}"
    as_owner(scenario.flow.db, ("DELETE FROM audit_event WHERE stream = :s", {"s": stream}))
    result = scenario.flow.verify(stream)
    assert (result.ok, result.events, result.broken_seq) == (False, 0, 1)
    assert result.reason == "stream missing: the instance row records 14 events, the trail has none"
    [finding] = _report(scenario.flow).findings  # found from the instance rows, too
    assert (finding.stream, finding.reason) == (stream, result.reason)


def test_verify_reports_a_stream_deleted_with_its_head_reset(scenario: Scenario) -> None:
    iid = _reviewed(scenario)
    as_owner(
        scenario.flow.db,
        ("DELETE FROM audit_event WHERE stream = :s", {"s": f"instance:{iid}"}),
        (
            "UPDATE instance SET audit_seq = 0, audit_hash = :g WHERE id = :i",
            {"g": GENESIS, "i": iid},
        ),
    )
    result = scenario.flow.verify(f"instance:{iid}")
    assert not result.ok and result.broken_seq is None
    assert "the instance row records no events" in (result.reason or "")


def test_verify_reports_events_whose_instance_row_is_gone(scenario: Scenario) -> None:
    iid = _reviewed(scenario)
    tasks = "SELECT id FROM human_task WHERE instance_id = :i"
    as_owner(
        scenario.flow.db,
        (f"DELETE FROM human_task_role WHERE task_id IN ({tasks})", {"i": iid}),
        ("DELETE FROM human_task WHERE instance_id = :i", {"i": iid}),
        ("DELETE FROM case_facts WHERE instance_id = :i", {"i": iid}),
        ("DELETE FROM instance WHERE id = :i", {"i": iid}),
    )
    findings = _report(scenario.flow).findings
    assert [str(f) for f in findings] == [
        f"instance:{iid}: broken: events without an instance row: the row is gone"
    ]


def test_verify_reports_an_edit_with_every_later_hash_recomputed(scenario: Scenario) -> None:
    iid = _reviewed(scenario)
    stream = f"instance:{iid}"
    rewrite(scenario.flow.db, stream, 6, actor="mallory")
    result = scenario.flow.verify(stream)
    assert (result.ok, result.events, result.broken_seq) == (False, 14, 14)
    assert result.reason == (
        "the last event's hash is not the head the instance row records: the chain was rewritten"
    )
    assert scenario.flow.history(iid)[5].actor == "mallory"  # each link holds: only the head tells


@pytest.mark.parametrize("stream", [DEFINITIONS_STREAM, MESSAGES_STREAM])
def test_verify_reports_a_shared_stream_cut_or_rewritten(scenario: Scenario, stream: str) -> None:
    flow = scenario.flow
    for key in ("SO-1", "SO-2"):  # kept: each waits for its invoice first
        flow.start("payment_collection", actor="cashier", business_key=key)
        flow.correlate("payment_received", actor="bank", business_key=key)
    flow.deploy([read("credit_check.bpmn")], actor="owner")  # unchanged: no new event
    assert flow.verify(stream).ok
    last = flow.verify(stream).events
    as_owner(
        flow.db,
        ("DELETE FROM audit_event WHERE stream = :s AND seq = :q", {"s": stream, "q": last}),
    )
    cut = flow.verify(stream)
    assert (cut.ok, cut.broken_seq, cut.recorded_seq) == (False, last, last)
    assert "audit_head row records the head" in (cut.reason or "")


def test_a_shared_streams_head_moves_with_its_events(scenario: Scenario) -> None:
    flow = scenario.flow
    for key in ("SO-1", "SO-2"):  # kept: each waits for its invoice first
        flow.start("payment_collection", actor="cashier", business_key=key)
        flow.correlate("payment_received", actor="bank", business_key=key)
    with flow.db.reading() as session:
        for stream, seq in ((DEFINITIONS_STREAM, 5), (MESSAGES_STREAM, 2)):
            last = session.execute(
                select(AuditEvent.seq, AuditEvent.hash)
                .where(AuditEvent.stream == stream)
                .order_by(AuditEvent.seq.desc())
            ).first()
            assert last is not None and last[0] == seq
            assert verification.recorded_head(session, stream) == tuple(last)


def _refused(db: Database, statement: str, params: dict[str, Any], match: str) -> None:
    with pytest.raises(DBAPIError, match=match), db.transaction() as session:
        session.execute(text(statement), params)


_COPY = (
    "stream, seq, instance_id, at, actor, kind, element_id, element_name, role, data, "
    "prev_hash, hash"
)


def test_the_database_refuses_replace_upsert_and_truncate(scenario: Scenario) -> None:
    """SQLite's REPLACE deleted the event in its way without firing the DELETE trigger;
    PostgreSQL's statement trigger refuses ON CONFLICT DO UPDATE, MERGE and TRUNCATE."""
    iid = _reviewed(scenario)
    db, stream = scenario.flow.db, f"instance:{iid}"
    mallory = _COPY.replace("actor,", "'mallory',")
    forged = f"SELECT {mallory} FROM audit_event"
    same_place = forged + " WHERE stream = :s AND seq = 6"
    if db.is_postgres:
        statements = [
            f"INSERT INTO audit_event ({_COPY}) {same_place} ON CONFLICT (stream, seq) "
            "DO UPDATE SET actor = excluded.actor",
            "MERGE INTO audit_event e USING (SELECT 1) x ON e.stream = :s WHEN MATCHED THEN DELETE",
            "TRUNCATE audit_event",
        ]
    else:
        statements = [
            f"INSERT OR REPLACE INTO audit_event ({_COPY}) {same_place}",
            f"REPLACE INTO audit_event ({_COPY}) {same_place}",
            # another place in the chain, the id of an event: REPLACE deleted that one
            f"REPLACE INTO audit_event (id, {_COPY}) SELECT id, stream, seq + 100, "
            f"instance_id, at, actor, kind, element_id, element_name, role, data, prev_hash, "
            f"hash FROM audit_event WHERE stream = :s AND seq = 6",
            f"INSERT INTO audit_event ({_COPY}) {same_place} ON CONFLICT (stream, seq) "
            "DO UPDATE SET actor = excluded.actor",
        ]
    for statement in statements:
        _refused(db, statement, {"s": stream}, "append-only")
    result = scenario.flow.verify(stream)
    assert (result.ok, result.events) == (True, 14)
    assert scenario.flow.history(iid)[5].actor == "checker"


def test_a_shared_streams_head_only_moves_forward(scenario: Scenario) -> None:
    db = scenario.flow.db
    s = {"s": DEFINITIONS_STREAM}
    statements = [
        "UPDATE audit_head SET seq = seq - 1 WHERE stream = :s",
        "UPDATE audit_head SET hash = :s WHERE stream = :s",
        "DELETE FROM audit_head WHERE stream = :s",
        "TRUNCATE audit_head"
        if db.is_postgres
        else "REPLACE INTO audit_head SELECT * FROM audit_head",
    ]
    for statement in statements:
        _refused(db, statement, s, "only moves forward")
    assert scenario.flow.verify(DEFINITIONS_STREAM).ok

"""The audit trail: complete, hash-chained, append-only, and verifiable."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError

from engine.audit import DEFINITIONS_STREAM, GENESIS, canonical_at, canonical_data, event_hash
from engine.clock import as_utc
from engine.models import AuditEvent
from tests.engine.conftest import Scenario


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
    assert deployed.ok and deployed.events == 4  # one per shipped process


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

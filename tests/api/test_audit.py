"""The audit trail: /instances/{id}/audit and /verify (readers of the instance) and the
cross-instance /audit (auditors and admins)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from sqlalchemy import text

from engine.audit import verification
from engine.storage import Database
from tests.api.conftest import V1, ApiClient, ok, problem
from tests.engine.audit.test_audit import as_owner

EVENT_FIELDS = {
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
}


def test_an_instances_trail_is_hash_chained(deployed: ApiClient) -> None:
    iid = deployed.start("document_review", "clerk", business_key="SO-1")
    task = deployed.task(iid, "prepare_documents")
    deployed.clock.advance(minutes=5)
    deployed.complete(task, "clerk", invoice_number="INV-1")

    body = ok(deployed.get(f"{V1}/instances/{iid}/audit", "clerk"))
    events = body["items"]
    assert body["total"] == len(events) == 5
    assert all(e.keys() >= EVENT_FIELDS for e in events)
    assert [(e["seq"], e["kind"], e["actor"]) for e in events] == [
        (1, "instance_started", "clerk"),
        (2, "task_created", "clerk"),
        (3, "task_claimed", "clerk"),
        (4, "task_completed", "clerk"),
        (5, "task_created", "clerk"),
    ]
    assert events[0]["prev_hash"] == "0" * 64
    for before, after in itertools.pairwise(events):
        assert after["prev_hash"] == before["hash"]
    assert events[0]["data"]["business_key"] == "SO-1"
    assert events[0]["at"] == "2026-11-27T09:00:00+00:00"
    completed = events[3]
    assert completed["at"] == "2026-11-27T09:05:00+00:00"
    assert (completed["element_id"], completed["element_name"], completed["role"]) == (
        "prepare_documents",
        "Prepare shipping documents",
        "documents_logistics",
    )
    # an unticked box is submitted as false, as form-js does; a field left out is empty
    assert completed["data"]["submitted"] == {
        "invoice_number": "INV-1",
        "packing_list_ready": False,
        "bill_of_lading_number": None,
    }
    assert events[4]["role"] == "risk_compliance"

    verified = ok(deployed.get(f"{V1}/instances/{iid}/audit/verify", "checker"))
    assert verified == {
        "valid": True,
        "first_bad_seq": None,
        "reason": None,
        "events": 5,
        "recorded_seq": 5,
        "problems": [],
        "checked": list(verification.CHECKS[:2]),
    }


def test_who_may_read_an_instances_trail(deployed: ApiClient) -> None:
    iid = deployed.start("document_review", "clerk")
    for path in ("audit", "audit/verify"):
        for user in ("clerk", "clerk2", "auditor", "admin"):
            ok(deployed.get(f"{V1}/instances/{iid}/{path}", user))
        for user in ("checker", "sales", "bank"):
            problem(deployed.get(f"{V1}/instances/{iid}/{path}", user), 403, "forbidden")
        problem(deployed.get(f"{V1}/instances/{iid}/{path}"), 401)
        problem(deployed.get(f"{V1}/instances/999999/{path}", "auditor"), 404, "not-found")
        problem(deployed.request("POST", f"{V1}/instances/{iid}/{path}", "auditor"), 405)


def _bypass_triggers(db: Database, statement: str) -> None:
    """What someone with DBA rights could do; verify must notice."""
    with db.engine.begin() as conn:
        if db.is_postgres:
            conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
            conn.execute(text(statement))
            conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER audit_event_no_update"))
            conn.execute(text("DROP TRIGGER audit_event_no_delete"))
            conn.execute(text(statement))


def test_verify_names_the_first_tampered_event(deployed: ApiClient) -> None:
    iid = deployed.start("document_review", "clerk")
    deployed.complete(deployed.task(iid, "prepare_documents"), "clerk", invoice_number="INV-1")
    _bypass_triggers(
        deployed.flow.db,
        f"UPDATE audit_event SET actor = 'mallory' WHERE seq = 3 AND stream = 'instance:{iid}'",
    )
    verified = ok(deployed.get(f"{V1}/instances/{iid}/audit/verify", "auditor"))
    assert (verified["valid"], verified["first_bad_seq"]) == (False, 3)
    assert "hash" in verified["reason"]
    trail = ok(deployed.get(f"{V1}/instances/{iid}/audit", "auditor"))["items"]
    assert trail[2]["actor"] == "mallory"  # the trail still reads; verify tells


def test_verify_names_the_newest_events_deleted(deployed: ApiClient) -> None:
    iid = deployed.start("document_review", "clerk")
    deployed.complete(deployed.task(iid, "prepare_documents"), "clerk", invoice_number="INV-1")
    as_owner(
        deployed.flow.db,
        ("DELETE FROM audit_event WHERE stream = :s AND seq >= 4", {"s": f"instance:{iid}"}),
    )
    verified = ok(deployed.get(f"{V1}/instances/{iid}/audit/verify", "auditor"))
    reason = (
        "events 4 to 5 missing: the instance row records the head at seq 5 (the newest were "
        "deleted)"
    )
    assert {k: v for k, v in verified.items() if k != "checked"} == {
        "valid": False,
        "first_bad_seq": 4,
        "reason": reason,
        "events": 3,
        "recorded_seq": 5,
        "problems": [{"seq": 4, "reason": reason}],
    }


@pytest.fixture
def history(deployed: ApiClient) -> dict[str, int]:
    """Deployed at 09:00; document review started 10:00, payment 11:00, prepared 12:00."""
    deployed.clock.advance(hours=1)
    review = deployed.start("document_review", "clerk", business_key="DR-1")
    deployed.clock.advance(hours=1)
    paying = deployed.start("payment_collection", "cashier", business_key="PAY-1")
    deployed.clock.advance(hours=1)
    deployed.complete(deployed.task(review, "prepare_documents"), "clerk", invoice_number="I-1")
    return {"review": review, "paying": paying}


def search(client: ApiClient, user: str = "auditor", **query: Any) -> list[tuple[Any, ...]]:
    body = ok(client.get(f"{V1}/audit", user, query_string=query))
    assert body["total"] >= len(body["items"])
    return [(e["instance_id"], e["kind"], e["actor"]) for e in body["items"]]


def test_the_cross_instance_trail_and_its_filters(
    deployed: ApiClient, history: dict[str, int]
) -> None:
    review, paying = history["review"], history["paying"]
    everything = ok(deployed.get(f"{V1}/audit", "auditor"))
    # 4 processes and a decision deployed, then the instances' events
    assert everything["total"] == len(everything["items"]) == 5 + 2 + 2 + 3
    ats = [e["at"] for e in everything["items"]]
    assert ats == sorted(ats)  # oldest first
    assert everything["items"][0]["stream"] == "definitions"
    assert ok(deployed.get(f"{V1}/audit", "admin")) == everything

    assert search(deployed, since="2026-11-27T10:00:00Z", until="2026-11-27T11:00:00Z") == [
        (review, "instance_started", "clerk"),
        (review, "task_created", "clerk"),
    ]
    assert search(deployed, since="2026-11-27T11:30:00+00:00") == [
        (review, "task_claimed", "clerk"),
        (review, "task_completed", "clerk"),
        (review, "task_created", "clerk"),
    ]
    assert search(deployed, actor="cashier") == [
        (paying, "instance_started", "cashier"),
        (paying, "task_created", "cashier"),
    ]
    assert search(deployed, kind="task_completed") == [(review, "task_completed", "clerk")]
    assert search(deployed, definition="payment_collection") == [
        (None, "definition_deployed", "owner"),
        (paying, "instance_started", "cashier"),
        (paying, "task_created", "cashier"),
    ]
    page = ok(deployed.get(f"{V1}/audit", "auditor", query_string={"limit": 3, "offset": 4}))
    assert (page["total"], page["items"]) == (12, everything["items"][4:7])


def test_the_time_range_honours_the_offset(deployed: ApiClient, history: dict[str, int]) -> None:
    review = history["review"]
    # 18:00 in Shanghai is 10:00 UTC
    assert search(
        deployed, since="2026-11-27T18:00:00+08:00", until="2026-11-27T19:00:00+08:00"
    ) == [
        (review, "instance_started", "clerk"),
        (review, "task_created", "clerk"),
    ]


def test_only_auditors_and_admins_search_the_trail(deployed: ApiClient) -> None:
    for user in ("owner", "clerk", "checker", "bank", "boss"):
        problem(deployed.get(f"{V1}/audit", user), 403, "forbidden")
    problem(deployed.get(f"{V1}/audit"), 401)
    for query in (
        {"since": "2026-11-27T09:00:00"},  # no offset: which time zone?
        {"until": "yesterday"},
        {"limit": 0},
        {"limit": 1001},
        {"offset": -1},
    ):
        body = problem(deployed.get(f"{V1}/audit", "auditor", query_string=query), 422)
        assert [e["field"] for e in body["errors"]] == list(query)
    problem(deployed.request("POST", f"{V1}/audit", "auditor", json={}), 405)

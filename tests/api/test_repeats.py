"""A start or a completion sent again under its Idempotency-Key gets the first answer
and changes nothing (engine/runtime/repeats.py); the answer is made in the unit of work,
so one that committed is never answered 5xx."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from engine.runtime import repeats
from engine.storage import Database, Instance, RequestKey
from tests.api.conftest import V1, ApiClient, ok, problem

START = {
    "definition": "document_review",
    "business_key": "SO-2026-501",
    "variables": {"customer": "ACME", "amount": 1200.5},
}


def _instances(client: ApiClient, business_key: str) -> int:
    with client.flow.db.reading() as session:
        count = select(func.count()).where(Instance.business_key == business_key)
        return int(session.scalar(count) or 0)


def test_a_start_sent_again_under_its_key_gets_the_first_answer(deployed: ApiClient) -> None:
    key = {"Idempotency-Key": "erp-order-501"}
    first = deployed.post(f"{V1}/instances", "clerk", json=START, headers=key)
    deployed.clock.advance(minutes=5)  # the client's retry, later
    with deployed.unchanged():
        again = deployed.post(f"{V1}/instances", "clerk", json=START, headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.get_json() == ok(first, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert _instances(deployed, "SO-2026-501") == 1

    # the key is the caller's own: another caller's same key is another request
    other = {**START, "business_key": "SO-2026-502"}
    ok(deployed.post(f"{V1}/instances", "owner", json=other, headers=key), 201)
    assert _instances(deployed, "SO-2026-502") == 1


def test_a_key_sent_with_another_request_is_refused(deployed: ApiClient) -> None:
    key = {"Idempotency-Key": "erp-order-503"}
    ok(
        deployed.post(f"{V1}/instances", "clerk", json={**START, "business_key": "A"}, headers=key),
        201,
    )
    for changed in (
        {**START, "business_key": "B"},
        {**START, "business_key": "A", "variables": {"customer": "ACME", "amount": 1}},
        {**START, "business_key": "A", "version": 1},
    ):
        with deployed.unchanged():
            refused = problem(
                deployed.post(f"{V1}/instances", "clerk", json=changed, headers=key), 422
            )
        assert "erp-order-503" in refused["detail"]
        assert [e["field"] for e in refused["errors"]] == ["Idempotency-Key"]
    for bad in ("k" * 256, "   "):
        with deployed.unchanged():
            refused = problem(
                deployed.post(
                    f"{V1}/instances", "clerk", json=START, headers={"Idempotency-Key": bad}
                ),
                422,
            )
        assert [e["field"] for e in refused["errors"]] == ["Idempotency-Key"]


def test_a_refused_start_keeps_no_key(deployed: ApiClient) -> None:
    """A start refused (here: its business key is taken) stores nothing, its key neither:
    sent again once the key is free, it is looked at afresh."""
    first = deployed.start("payment_collection", "cashier", business_key="SO-504")
    key = {"Idempotency-Key": "k-504"}
    body = {"definition": "payment_collection", "business_key": "SO-504"}
    problem(deployed.post(f"{V1}/instances", "cashier", json=body, headers=key), 409)
    ok(deployed.post(f"{V1}/instances/{first}/cancel", "owner", json={"reason": "re-keyed"}))
    again = ok(deployed.post(f"{V1}/instances", "cashier", json=body, headers=key), 201)
    assert again["id"] != first


def test_a_completion_sent_again_under_its_key_gets_the_first_answer(
    deployed: ApiClient,
) -> None:
    iid = deployed.start("payment_collection", "cashier", business_key="SO-505")
    task = deployed.task(iid, "issue_invoice")
    body = {"data": {"invoice_amount": 1000.0, "currency": "USD"}}
    key = {"Idempotency-Key": "c-505"}
    first = ok(deployed.post(f"{V1}/tasks/{task}/complete", "cashier", json=body, headers=key))
    assert first["state"] == "completed"
    with deployed.unchanged():
        again = deployed.post(f"{V1}/tasks/{task}/complete", "cashier", json=body, headers=key)
    assert again.status_code == 200 and again.get_json() == first
    assert deployed.kinds(iid).count("task_completed") == 1
    # without the key, the same completion is what it is: the task is no longer open
    problem(
        deployed.post(f"{V1}/tasks/{task}/complete", "cashier", json=body), 409, "task-not-open"
    )
    other = {"data": {"invoice_amount": 1.0, "currency": "USD"}}
    refused = problem(
        deployed.post(f"{V1}/tasks/{task}/complete", "cashier", json=other, headers=key), 422
    )
    assert [e["field"] for e in refused["errors"]] == ["Idempotency-Key"]


def test_keys_are_forgotten_after_their_time(deployed: ApiClient) -> None:
    key = {"Idempotency-Key": "k-506"}
    body = {"definition": "document_review", "variables": {"customer": "X", "amount": 1.0}}
    first = ok(deployed.post(f"{V1}/instances", "clerk", json=body, headers=key), 201)
    deployed.clock.advance(days=repeats.KEPT.days, seconds=1)
    # past its time the key answers no more, dropped by the sweep or not
    again = ok(deployed.post(f"{V1}/instances", "clerk", json=body, headers=key), 201)
    assert again["id"] != first["id"]
    first = again
    deployed.clock.advance(days=repeats.KEPT.days, seconds=1)
    with deployed.flow.db.transaction() as session:
        assert repeats.forget(session, deployed.clock.now() - repeats.KEPT) == 1
        assert session.scalars(select(RequestKey)).all() == []
    again = ok(deployed.post(f"{V1}/instances", "clerk", json=body, headers=key), 201)
    assert again["id"] != first["id"]  # a new request now


def test_a_repeat_gets_the_first_answer_exactly(deployed: ApiClient) -> None:
    """The answer is kept as the JSON that was sent: 1e16 stays a float, 1.5e300 too
    (PostgreSQL's jsonb would give them back as integers of 17 and 301 digits)."""
    body = {
        "definition": "document_review",
        "variables": {"customer": "ACME", "amount": 1e16, "tiny": 1.5e300, "flag": True},
    }
    key = {"Idempotency-Key": "exact-1"}
    first = deployed.post(f"{V1}/instances", "clerk", json=body, headers=key)
    again = deployed.post(f"{V1}/instances", "clerk", json=body, headers=key)
    assert again.get_json() == first.get_json()
    assert again.get_data() == first.get_data()  # byte for byte
    assert isinstance(again.get_json()["variables"]["amount"], float)


def test_a_start_that_committed_is_answered_though_reading_fails_after(
    deployed: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer is the unit's own: the database may refuse every read after the commit
    (here it does), and what follows the commit may fail; the start is answered 201."""

    def down(self: Database) -> Any:
        raise OperationalError("SELECT", {}, Exception("the server closed the connection"))

    def broken_cache(*args: Any) -> None:
        raise RuntimeError("the live cache")

    monkeypatch.setattr(Database, "reading", down)
    monkeypatch.setattr(deployed.flow.runtime.live, "keep", broken_cache)
    started = ok(deployed.post(f"{V1}/instances", "clerk", json=START), 201)
    assert [t["element_id"] for t in started["tasks"]] == ["prepare_documents"]
    monkeypatch.undo()
    assert deployed.flow.instance(started["id"]).business_key == "SO-2026-501"
    iid = deployed.start("payment_collection", "cashier", business_key="SO-507")
    task = deployed.task(iid, "issue_invoice")
    body = {"data": {"invoice_amount": 1000.0, "currency": "USD"}}
    monkeypatch.setattr(Database, "reading", down)
    done = ok(deployed.post(f"{V1}/tasks/{task}/complete", "cashier", json=body))
    monkeypatch.undo()
    assert done["state"] == "completed"
    assert done["next_tasks"] == []  # it waits for the payment
    assert deployed.flow.instance(iid).next_wakeup_at is not None

"""/api/v1/messages: the bank feed's payments, delivered (200) or kept for later (202)."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import V1, ApiClient, ok, problem


def invoiced(client: ApiClient, key: str, amount: float = 1000.0, currency: str = "USD") -> int:
    """A payment collection waiting for its payment."""
    iid = client.start("payment_collection", "cashier", business_key=key)
    client.complete(
        client.task(iid, "issue_invoice"), "cashier", invoice_amount=amount, currency=currency
    )
    assert client.open_elements(iid) == []
    return iid


def send(client: ApiClient, user: str | None, **body: Any) -> Any:
    return client.post(f"{V1}/messages", user, json=body)


def test_a_payment_is_delivered_to_the_waiting_instance(deployed: ApiClient) -> None:
    other = invoiced(deployed, "SO-8")
    iid = invoiced(deployed, "SO-9")
    response = send(
        deployed,
        "bank",
        name="payment_received",
        business_key="SO-9",
        variables={"amount_received": 1000.0, "bank_ref": "TT-1"},
    )
    body = ok(response, 200)
    assert (body["delivered_to"], body["kept"]) == ([iid], False)
    assert isinstance(body["message_id"], int)

    assert deployed.open_elements(iid) == ["write_off"]
    assert deployed.open_elements(other) == []  # still waiting
    variables = ok(deployed.get(f"{V1}/instances/{iid}", "cashier"))["variables"]
    assert (variables["amount_received"], variables["bank_ref"]) == (1000.0, "TT-1")
    received = ok(deployed.get(f"{V1}/instances/{iid}/audit", "auditor"))["items"][-2]
    assert (received["kind"], received["actor"]) == ("message_received", "bank")
    assert received["data"]["variables"] == {"amount_received": 1000.0, "bank_ref": "TT-1"}

    short = send(
        deployed,
        "admin",  # admins may send messages too
        name="payment_received",
        business_key="SO-8",
        variables={"amount_received": 10.0},
    )
    assert ok(short)["delivered_to"] == [other]
    assert deployed.open_elements(other) == ["chase_payment"]


def test_an_early_payment_is_kept_until_the_instance_waits(deployed: ApiClient) -> None:
    iid = deployed.start("payment_collection", "cashier", business_key="SO-11")
    response = send(
        deployed,
        "bank",
        name="payment_received",
        business_key="SO-11",
        variables={"amount_received": 1000.0},
        ttl_seconds=3600,
    )
    body = ok(response, 202)
    assert (body["delivered_to"], body["kept"]) == ([], True)
    assert isinstance(body["message_id"], int)
    assert deployed.open_elements(iid) == ["issue_invoice"]
    kept = ok(deployed.get(f"{V1}/audit", "auditor", query_string={"kind": "message_buffered"}))
    [event] = kept["items"]
    assert (event["actor"], event["stream"], event["element_id"]) == (
        "bank",
        "messages",
        "payment_received",
    )
    assert event["data"]["message_id"] == body["message_id"]

    deployed.complete(
        deployed.task(iid, "issue_invoice"), "cashier", invoice_amount=1000.0, currency="USD"
    )
    assert deployed.open_elements(iid) == ["write_off"]
    assert "message_received" in deployed.kinds(iid)


def test_correlation_values_pick_the_instance(deployed: ApiClient) -> None:
    invoiced(deployed, "SO-12", amount=10.0, currency="EUR")
    second = invoiced(deployed, "SO-13", amount=20.0, currency="EUR")
    response = send(
        deployed,
        "bank",
        name="payment_received",
        correlation={"invoice_amount": 20.0},
        variables={"amount_received": 20.0},
    )
    assert ok(response)["delivered_to"] == [second]
    assert deployed.open_elements(second) == ["write_off"]


def test_refused_messages_leave_nothing_behind(deployed: ApiClient) -> None:
    invoiced(deployed, "SO-1", currency="USD")
    invoiced(deployed, "SO-2", currency="USD")
    payment = {"name": "payment_received", "business_key": "SO-1"}
    cases: list[tuple[str | None, dict[str, Any], int, str | None]] = [
        ("clerk", payment, 403, "forbidden"),
        ("cashier", payment, 403, "forbidden"),
        ("auditor", payment, 403, "forbidden"),
        ("owner", payment, 403, "forbidden"),
        (None, payment, 401, None),
        ("bank", {"business_key": "SO-1"}, 422, None),
        ("bank", {"name": "", "business_key": "SO-1"}, 422, None),
        ("bank", {**payment, "ttl_seconds": 0}, 422, None),
        ("bank", {**payment, "variables": ["amount_received"]}, 422, None),
        ("bank", {"name": "payment_received"}, 422, "message-invalid"),
        ("bank", {**payment, "variables": {"not a name": 1}}, 422, "message-invalid"),
        ("bank", {"name": "no_such_message", "business_key": "SO-1"}, 409, None),
        # both invoices are in USD: which one was paid?
        ("bank", {"name": "payment_received", "correlation": {"currency": "USD"}}, 409, None),
    ]
    for user, body, status, slug in cases:
        with deployed.unchanged():
            found = problem(send(deployed, user, **body), status, slug)
        if status == 422 and slug is None:
            assert found["errors"], found
        if status == 409:
            assert found["type"] == "urn:tradeflow:problem:message-undeliverable"


def test_messages_are_post_only(deployed: ApiClient) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = deployed.request(method, f"{V1}/messages", "bank")
        problem(response, 405)
        assert "POST" in response.headers["Allow"]


def test_a_message_that_says_more_than_it_is_for_is_422_naming_it(deployed: ApiClient) -> None:
    iid = invoiced(deployed, "SO-40", amount=49_000.0)
    with deployed.unchanged():
        body = problem(
            send(
                deployed,
                "bank",
                name="payment_received",
                business_key="SO-40",
                variables={"amount_received": 1000.0, "invoice_amount": 1000.0},
            ),
            422,
            "message-invalid",
        )
        assert [e["field"] for e in body["errors"]] == ["variables.invoice_amount"]
        body = problem(
            send(deployed, "bank", name="payment_received", correlation={"order_ref": None}),
            422,
            "message-invalid",
        )
        assert [e["field"] for e in body["errors"]] == ["correlation.order_ref"]
    assert deployed.open_elements(iid) == []


def test_a_second_running_instance_with_the_same_key_is_409(deployed: ApiClient) -> None:
    invoiced(deployed, "SO-41")
    with deployed.unchanged():
        problem(
            deployed.post(
                f"{V1}/instances",
                "cashier",
                json={"definition": "payment_collection", "business_key": "SO-41"},
            ),
            409,
            "business-key-taken",
        )


def test_a_payment_sent_twice_under_one_key_is_booked_once(deployed: ApiClient) -> None:
    """The bank's feed repeats a payment with its Idempotency-Key: the repeat answers as
    the first did and changes nothing; the same key on another message is refused; the
    key is the sender's own (another sender's same key is another message)."""
    iid = invoiced(deployed, "SO-31")
    payment = {
        "name": "payment_received",
        "business_key": "SO-31",
        "variables": {"amount_received": 1000.0, "bank_ref": "TT-31"},
    }
    headers = {"Idempotency-Key": "bank-2026-12-03-0001"}
    first = ok(deployed.post(f"{V1}/messages", "bank", json=payment, headers=headers))
    again = ok(deployed.post(f"{V1}/messages", "bank", json=payment, headers=headers))
    assert (
        first == again == {"message_id": first["message_id"], "delivered_to": [iid], "kept": False}
    )
    audit = ok(deployed.get(f"{V1}/instances/{iid}/audit", "auditor"))["items"]
    assert [e["kind"] for e in audit].count("message_received") == 1
    assert deployed.open_elements(iid) == ["write_off"]

    other = {**payment, "variables": {"amount_received": 1.0}}
    refused = problem(deployed.post(f"{V1}/messages", "bank", json=other, headers=headers), 422)
    assert "bank-2026-12-03-0001" in refused["detail"]
    assert [e["field"] for e in refused["errors"]] == ["Idempotency-Key"]

    # kept the first time: a repeat answers 202 with the same message, nothing new kept
    deployed.start("payment_collection", "cashier", business_key="SO-32")  # not invoiced yet
    deployed.start("payment_collection", "cashier", business_key="SO-33")
    early = {"name": "payment_received", "business_key": "SO-32", "variables": {}}
    key = {"Idempotency-Key": "bank-0002"}
    kept = deployed.post(f"{V1}/messages", "bank", json=early, headers=key)
    repeat = deployed.post(f"{V1}/messages", "bank", json=early, headers=key)
    assert kept.status_code == repeat.status_code == 202
    assert ok(kept, 202) == ok(repeat, 202)
    by_admin = ok(deployed.post(f"{V1}/messages", "admin", json=early, headers=key), 202)
    assert by_admin["message_id"] != ok(kept, 202)["message_id"]

    for bad in ("k" * 256, "  "):
        header = {"Idempotency-Key": bad}
        refused = problem(deployed.post(f"{V1}/messages", "bank", json=early, headers=header), 422)
        assert [e["field"] for e in refused["errors"]] == ["Idempotency-Key"]
    # true is not 1: another message under the same key
    flag = {"name": "payment_received", "business_key": "SO-33", "variables": {}}
    flagged = {**flag, "correlation": {"paid": True}}
    counted = {**flag, "correlation": {"paid": 1}}
    ok(
        deployed.post(f"{V1}/messages", "bank", json=flagged, headers={"Idempotency-Key": "b3"}),
        202,
    )
    problem(
        deployed.post(f"{V1}/messages", "bank", json=counted, headers={"Idempotency-Key": "b3"}),
        422,
    )


def test_a_payment_for_an_order_whose_collection_ended_is_refused(deployed: ApiClient) -> None:
    """The duplicate of a payment already booked: its collection has completed and no
    instance with that key runs, so it is refused (409, naming the instance), not kept
    for the order's next invoice. With no instance yet it is refused too (its catch takes
    no message from before its instance started); for one not yet invoiced it is kept."""
    iid = invoiced(deployed, "SO-41")
    payment = {"name": "payment_received", "business_key": "SO-41", "variables": {}}
    payment["variables"] = {"amount_received": 1000.0}
    assert ok(send(deployed, "bank", **payment))["delivered_to"] == [iid]
    deployed.complete(deployed.task(iid, "write_off"), "cashier", fx_rate=7.1)
    assert deployed.open_elements(iid) == []
    refused = problem(send(deployed, "bank", **payment), 409, "message-undeliverable")
    assert f"instance {iid}" in refused["detail"] and "completed" in refused["detail"]
    early = {**payment, "business_key": "SO-42"}
    refused = problem(send(deployed, "bank", **early), 409, "message-undeliverable")
    assert "no instance with business key 'SO-42' is running" in refused["detail"]
    assert "acceptsEarlierMessages" in refused["detail"]
    waiting = deployed.start("payment_collection", "cashier", business_key="SO-42")
    assert ok(send(deployed, "bank", **early), 202)["kept"] is True
    deployed.complete(
        deployed.task(waiting, "issue_invoice"), "cashier", invoice_amount=1000.0, currency="USD"
    )
    assert deployed.open_elements(waiting) == ["write_off"]  # it took the kept payment

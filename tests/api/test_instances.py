"""/api/v1/instances: start (employees), list and read (by role), cancel (owners, admins)."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import V1, ApiClient, ok, problem
from tests.api.test_definitions import renamed_review

TASK_FIELDS = {
    "id",
    "instance_id",
    "business_key",
    "element_id",
    "name",
    "roles",
    "assignee",
    "state",
    "created_at",
    "due_at",
    "priority",
    "form_id",
}


def test_an_employee_starts_and_reads_an_instance(deployed: ApiClient) -> None:
    response = deployed.post(
        f"{V1}/instances",
        "clerk",
        json={
            "definition": "document_review",
            "business_key": "SO-2026-114",
            "variables": {"customer": "ACME", "amount": 1200.5},
        },
    )
    started = ok(response, 201)
    iid = started["id"]
    assert started["status"] == "running"
    assert started["business_key"] == "SO-2026-114"
    assert started["definition"] == {"key": "document_review", "version": 1}
    assert started["started_by"] == "clerk"
    assert started["started_at"] == "2026-11-27T09:00:00+00:00"
    assert started["variables"] == {"customer": "ACME", "amount": 1200.5}
    [task] = started["tasks"]
    assert task.keys() >= TASK_FIELDS
    assert (task["instance_id"], task["business_key"]) == (iid, "SO-2026-114")
    assert (task["element_id"], task["name"]) == ("prepare_documents", "Prepare shipping documents")
    assert (task["roles"], task["state"], task["assignee"]) == (
        ["documents_logistics"],
        "open",
        None,
    )
    assert task["form_id"] == "prepare_documents"

    read = ok(deployed.get(f"{V1}/instances/{iid}", "clerk"))
    assert read == started
    assert deployed.kinds(iid) == ["instance_started", "task_created"]
    assert deployed.flow.history(iid)[0].actor == "clerk"


def test_process_owners_integrations_and_admins_start_too(deployed: ApiClient) -> None:
    for user in ("owner", "bank", "admin", "sales"):
        iid = deployed.start("payment_collection", user, business_key=f"SO-{user}")
        assert deployed.open_elements(iid) == ["issue_invoice"]


def test_start_a_given_version(deployed: ApiClient) -> None:
    deployed.deploy([renamed_review()])
    latest = ok(
        deployed.post(f"{V1}/instances", "clerk", json={"definition": "document_review"}), 201
    )
    assert latest["definition"] == {"key": "document_review", "version": 2}
    first = ok(
        deployed.post(
            f"{V1}/instances", "clerk", json={"definition": "document_review", "version": 1}
        ),
        201,
    )
    assert first["definition"] == {"key": "document_review", "version": 1}


def test_refused_starts_create_nothing(deployed: ApiClient) -> None:
    cases: list[tuple[str | None, Any, int, str | None]] = [
        ("auditor", {"definition": "document_review"}, 403, "forbidden"),
        (None, {"definition": "document_review"}, 401, None),
        ("clerk", {"definition": "no_such_process"}, 404, "not-found"),
        ("clerk", {"definition": "document_review", "version": 9}, 404, "not-found"),
        ("clerk", {"business_key": "SO-1"}, 422, None),
        ("clerk", {"definition": "document_review", "version": 0}, 422, None),
        ("clerk", {"definition": "document_review", "business_key": ""}, 422, None),
        ("clerk", {"definition": "document_review", "business_key": "x" * 256}, 422, None),
        ("clerk", {"definition": "document_review", "variables": []}, 422, None),
        ("clerk", {"definition": "document_review", "variables": {"a b": 1}}, 422, "form-invalid"),
        (
            "clerk",
            {"definition": "document_review", "variables": {"__class__": 1}},
            422,
            "form-invalid",
        ),
        ("clerk", ["document_review"], 422, None),
    ]
    for user, body, status, slug in cases:
        with deployed.unchanged():
            found = problem(deployed.post(f"{V1}/instances", user, json=body), status, slug)
        if status == 422 and slug is None:
            assert found["errors"], found
    missing = problem(deployed.post(f"{V1}/instances", "clerk", json={}), 422)
    assert missing["errors"] == [
        {"field": "definition", "message": "Missing data for required field."}
    ]
    with deployed.unchanged():
        problem(
            deployed.post(
                f"{V1}/instances", "clerk", data="{not json", content_type="application/json"
            ),
            400,
        )
    assert ok(deployed.get(f"{V1}/instances", "admin"))["total"] == 0


def test_listing_filters_pages_and_visibility(deployed: ApiClient) -> None:
    first = deployed.start("document_review", "clerk", business_key="BK-1")
    second = deployed.start("document_review", "clerk", business_key="BK-2")
    paying = deployed.start("payment_collection", "cashier", business_key="PAY-1")
    ok(deployed.post(f"{V1}/instances/{second}/cancel", "owner"))

    def ids(user: str, **query: Any) -> tuple[list[int], int]:
        body = ok(deployed.get(f"{V1}/instances", user, query_string=query))
        assert body.keys() >= {"items", "total"}
        return [i["id"] for i in body["items"]], body["total"]

    assert ids("auditor") == ([paying, second, first], 3)  # newest first
    assert ids("admin", status="cancelled") == ([second], 1)
    assert ids("auditor", status="running") == ([paying, first], 2)
    assert ids("auditor", definition="payment_collection") == ([paying], 1)
    assert ids("auditor", business_key="BK-1") == ([first], 1)
    assert ids("auditor", business_key="nope") == ([], 0)
    assert ids("auditor", limit=2) == ([paying, second], 3)
    assert ids("auditor", limit=2, offset=2) == ([first], 3)
    listed = ok(deployed.get(f"{V1}/instances", "auditor", query_string={"limit": 1}))["items"]
    assert listed[0]["definition"] == {"key": "payment_collection", "version": 1}
    assert (listed[0]["status"], listed[0]["business_key"]) == ("running", "PAY-1")

    # employees see the instances where one of their roles has (or had) a task
    assert ids("clerk") == ([second, first], 2)
    assert ids("cashier") == ([paying], 1)
    assert ids("sales") == ([], 0)
    assert ids("checker") == ([], 0)

    for query in ({"status": "bogus"}, {"limit": 0}, {"limit": 501}, {"offset": -1}):
        body = problem(deployed.get(f"{V1}/instances", "auditor", query_string=query), 422)
        assert [e["field"] for e in body["errors"]] == list(query)


def test_who_may_read_an_instance(deployed: ApiClient) -> None:
    iid = deployed.start("document_review", "clerk")
    for user in ("clerk", "clerk2", "allrounder", "auditor", "admin"):
        assert ok(deployed.get(f"{V1}/instances/{iid}", user))["id"] == iid
    # no task of the checker's role yet
    problem(deployed.get(f"{V1}/instances/{iid}", "checker"), 403, "forbidden")
    problem(deployed.get(f"{V1}/instances/{iid}", "sales"), 403, "forbidden")
    problem(deployed.get(f"{V1}/instances/{iid}", "bank"), 403, "forbidden")
    problem(deployed.get(f"{V1}/instances/{iid}"), 401)

    deployed.complete(deployed.task(iid, "prepare_documents"), "clerk", invoice_number="INV-1")
    detail = ok(deployed.get(f"{V1}/instances/{iid}", "checker"))
    assert [t["element_id"] for t in detail["tasks"]] == ["review_documents"]
    assert detail["variables"]["invoice_number"] == "INV-1"

    problem(deployed.get(f"{V1}/instances/999999", "auditor"), 404, "not-found")
    problem(deployed.get(f"{V1}/instances/999999", "sales"), 404, "not-found")
    problem(deployed.get(f"{V1}/instances/not-a-number", "auditor"), 404)


def test_cancel_closes_the_instance_and_its_tasks(deployed: ApiClient) -> None:
    iid = deployed.start("document_review", "clerk", business_key="SO-5")
    task = deployed.task(iid, "prepare_documents")
    ok(deployed.post(f"{V1}/tasks/{task}/claim", "clerk"))
    deployed.clock.advance(hours=1)
    body = ok(deployed.post(f"{V1}/instances/{iid}/cancel", "owner", json={"reason": "duplicate"}))
    assert (body["id"], body["status"]) == (iid, "cancelled")
    assert body["ended_at"] == "2026-11-27T10:00:00+00:00"

    detail = ok(deployed.get(f"{V1}/instances/{iid}", "auditor"))
    assert (detail["status"], detail["tasks"]) == ("cancelled", [])
    assert ok(deployed.get(f"{V1}/tasks/{task}", "admin"))["state"] == "cancelled"
    assert ok(deployed.get(f"{V1}/tasks", "clerk"))["items"] == []
    events = deployed.flow.history(iid)
    assert [e.kind for e in events[-2:]] == ["task_cancelled", "instance_cancelled"]
    assert (events[-1].actor, events[-1].data) == ("owner", {"reason": "duplicate"})

    other = deployed.start("payment_collection", "cashier")
    assert ok(deployed.post(f"{V1}/instances/{other}/cancel", "admin"))["status"] == "cancelled"


def test_refused_cancels_change_nothing(deployed: ApiClient) -> None:
    iid = deployed.start("document_review", "clerk")
    for user in ("clerk", "checker", "auditor", "bank", "boss"):
        with deployed.unchanged():
            problem(deployed.post(f"{V1}/instances/{iid}/cancel", user), 403, "forbidden")
    with deployed.unchanged():
        problem(deployed.post(f"{V1}/instances/{iid}/cancel"), 401)
        problem(deployed.post(f"{V1}/instances/999999/cancel", "owner"), 404, "not-found")
        body = problem(
            deployed.post(f"{V1}/instances/{iid}/cancel", "owner", json={"reason": 5}), 422
        )
        assert [e["field"] for e in body["errors"]] == ["reason"]
    assert ok(deployed.get(f"{V1}/instances/{iid}", "clerk"))["status"] == "running"
    assert deployed.open_elements(iid) == ["prepare_documents"]

    ok(deployed.post(f"{V1}/instances/{iid}/cancel", "owner"))
    with deployed.unchanged():
        problem(deployed.post(f"{V1}/instances/{iid}/cancel", "owner"), 409, "instance-not-running")


def test_other_methods_are_405(deployed: ApiClient) -> None:
    iid = deployed.start("document_review", "clerk")
    for method, url in [
        ("DELETE", f"/instances/{iid}"),
        ("PUT", f"/instances/{iid}"),
        ("GET", f"/instances/{iid}/cancel"),
        ("DELETE", "/instances"),
    ]:
        with deployed.unchanged():
            response = deployed.request(method, V1 + url, "owner")
            problem(response, 405)
        assert response.headers["Allow"]


def test_bad_variable_names_are_listed_as_field_errors(deployed: ApiClient) -> None:
    body = {"definition": "document_review", "variables": {"a b": 1, "fine": 2}}
    with deployed.unchanged():
        found = problem(deployed.post(f"{V1}/instances", "clerk", json=body), 422, "form-invalid")
    assert [e["field"] for e in found.get("errors", [])] == ["variables.a b"]

"""/api/v1/tasks: the caller's inbox, a task with its form, claim/unclaim/delegate/complete,
and the document review from deployment to a verified audit trail."""

from __future__ import annotations

from typing import Any

from engine.timers.scheduler import Timers
from tests.api.conftest import TRIAGE, V1, ApiClient, ok, problem, snapshot
from tests.api.test_instances import TASK_FIELDS
from tests.engine.conftest import fixture_files


def inbox(client: ApiClient, user: str, **query: Any) -> list[tuple[int, str]]:
    body = ok(client.get(f"{V1}/tasks", user, query_string=query))
    assert body.keys() >= {"items", "next"}
    return [(t["instance_id"], t["element_id"]) for t in body["items"]]


def task_of(client: ApiClient, task_id: int, user: str = "admin") -> dict[str, Any]:
    return dict(ok(client.get(f"{V1}/tasks/{task_id}", user)))


def summary_of(client: ApiClient, task_id: int) -> dict[str, Any]:
    """The task as lists show it: its detail without the form and the data."""
    return {k: v for k, v in task_of(client, task_id).items() if k not in ("form", "data")}


# --- the inbox ---------------------------------------------------------------------------


def test_the_inbox_holds_the_callers_roles_tasks(deployed: ApiClient) -> None:
    first = deployed.start("document_review", "clerk", business_key="BK-1")
    second = deployed.start("document_review", "clerk", business_key="BK-2")
    paying = deployed.start("payment_collection", "cashier", business_key="PAY-1")

    body = ok(deployed.get(f"{V1}/tasks", "clerk2"))
    assert body["next"] is None
    assert [(t["instance_id"], t["business_key"]) for t in body["items"]] == [
        (first, "BK-1"),
        (second, "BK-2"),
    ]
    item = body["items"][0]
    assert item.keys() >= TASK_FIELDS
    assert item["id"] == deployed.task(first, "prepare_documents")
    assert (item["element_id"], item["name"]) == ("prepare_documents", "Prepare shipping documents")
    assert (item["roles"], item["state"], item["assignee"]) == (
        ["documents_logistics"],
        "open",
        None,
    )
    # sla P1D: one working day from Friday 17:00 in Shanghai (the shipped calendar) is
    # Monday 17:00 there
    assert (item["created_at"], item["due_at"]) == (
        "2026-11-27T09:00:00+00:00",
        "2026-11-30T09:00:00+00:00",
    )
    assert (item["priority"], item["form_id"]) == (50, "prepare_documents")

    assert inbox(deployed, "cashier") == [(paying, "issue_invoice")]
    assert inbox(deployed, "checker") == []
    assert inbox(deployed, "admin") == []  # no role, no inbox
    assert inbox(deployed, "allrounder") == [
        (first, "prepare_documents"),
        (second, "prepare_documents"),
    ]

    assert inbox(deployed, "clerk", instance_id=second) == [(second, "prepare_documents")]
    assert inbox(deployed, "clerk", business_key="BK-1") == [(first, "prepare_documents")]
    assert inbox(deployed, "clerk", business_key="PAY-1") == []
    assert inbox(deployed, "clerk", role="documents_logistics") == inbox(deployed, "clerk")
    assert inbox(deployed, "clerk", role="finance") == []  # not the clerk's queue
    assert inbox(deployed, "clerk", overdue="false") == inbox(deployed, "clerk")
    assert inbox(deployed, "clerk", overdue="true") == []


def test_a_claimed_task_leaves_the_other_inboxes(deployed: ApiClient) -> None:
    first = deployed.start("document_review", "clerk", business_key="BK-1")
    second = deployed.start("document_review", "clerk", business_key="BK-2")
    task = deployed.task(first, "prepare_documents")

    claimed = ok(deployed.post(f"{V1}/tasks/{task}/claim", "clerk"))
    assert claimed.keys() >= TASK_FIELDS
    assert (claimed["id"], claimed["state"], claimed["assignee"]) == (task, "claimed", "clerk")
    assert claimed["business_key"] == "BK-1"

    both = [(first, "prepare_documents"), (second, "prepare_documents")]
    assert inbox(deployed, "clerk") == both
    assert inbox(deployed, "clerk2") == [(second, "prepare_documents")]
    assert inbox(deployed, "clerk", assignee="me") == [(first, "prepare_documents")]
    assert inbox(deployed, "clerk", state="claimed") == [(first, "prepare_documents")]
    assert inbox(deployed, "clerk", state="unclaimed") == [(second, "prepare_documents")]
    assert inbox(deployed, "clerk2", assignee="me") == []

    events = deployed.flow.history(first)
    assert (events[-1].kind, events[-1].actor) == ("task_claimed", "clerk")
    assert events[-1].data == {"task_id": task, "assignee": "clerk"}
    before = snapshot(deployed.flow)
    # claiming one's own task again is no new claim (the instance row is saved again, though)
    assert ok(deployed.post(f"{V1}/tasks/{task}/claim", "clerk"))["assignee"] == "clerk"
    after = snapshot(deployed.flow)
    assert (after["tasks"], after["audit"]) == (before["tasks"], before["audit"])


def test_state_open_lists_only_open_tasks(deployed: ApiClient) -> None:
    first = deployed.start("document_review", "clerk")
    second = deployed.start("document_review", "clerk")
    ok(deployed.post(f"{V1}/tasks/{deployed.task(first, 'prepare_documents')}/claim", "clerk"))
    body = ok(deployed.get(f"{V1}/tasks", "clerk", query_string={"state": "open"}))
    assert [(t["instance_id"], t["state"]) for t in body["items"]] == [(second, "open")]


def test_the_inbox_pages_with_a_cursor(deployed: ApiClient) -> None:
    started = [deployed.start("document_review", "clerk") for _ in range(3)]
    seen: list[int] = []
    cursor: str | None = None
    for _ in range(5):
        query: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        body = ok(deployed.get(f"{V1}/tasks", "clerk", query_string=query))
        assert len(body["items"]) == 1
        assert "total" not in body  # counting every match is asked for, not free
        counted = {**query, "with_total": "true"}
        assert ok(deployed.get(f"{V1}/tasks", "clerk", query_string=counted))["total"] == 3
        seen.append(body["items"][0]["instance_id"])
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == started
    two = ok(deployed.get(f"{V1}/tasks", "clerk", query_string={"limit": 2}))
    assert [t["instance_id"] for t in two["items"]] == started[:2]
    rest = ok(deployed.get(f"{V1}/tasks", "clerk", query_string={"cursor": two["next"]}))
    assert ([t["instance_id"] for t in rest["items"]], rest["next"]) == (started[2:], None)

    problem(deployed.get(f"{V1}/tasks", "clerk", query_string={"cursor": "not-ours"}), 400)
    for query in (
        {"limit": 0},
        {"limit": 501},
        {"sort": "name"},
        {"state": "bogus"},
        {"assignee": "clerk2"},
        {"overdue": "maybe"},
        {"instance_id": "one"},
    ):
        body = problem(deployed.get(f"{V1}/tasks", "clerk", query_string=query), 422)
        assert [e["field"] for e in body["errors"]] == list(query)


def test_the_inbox_sorts_by_priority(client: ApiClient) -> None:
    client.deploy([TRIAGE])
    iid = client.start("triage", "cashier")
    order = [(iid, "urgent"), (iid, "normal"), (iid, "routine")]
    assert inbox(client, "cashier", sort="priority") == order
    assert inbox(client, "cashier", sort="created") == order  # same moment: by priority
    body = ok(client.get(f"{V1}/tasks", "cashier", query_string={"sort": "priority"}))
    assert [t["priority"] for t in body["items"]] == [90, 50, 10]


def test_an_sla_makes_a_task_due_and_then_overdue(client: ApiClient) -> None:
    client.deploy([TRIAGE])
    iid = client.start("triage", "cashier")
    routine = task_of(client, client.task(iid, "routine"))
    # a working hour from Friday 17:00 in Shanghai (the shipped calendar): 18:00 there
    assert routine["due_at"] == "2026-11-27T10:00:00+00:00"
    assert (routine["overdue"], routine["breached_at"]) == (False, None)
    assert inbox(client, "cashier")[0] == (iid, "routine")  # sort=due: due tasks first
    client.clock.advance(hours=2)
    assert inbox(client, "cashier", overdue="true") == [(iid, "routine")]
    assert inbox(client, "cashier", overdue="false") == [(iid, "urgent"), (iid, "normal")]
    routine = task_of(client, routine["id"])
    assert (routine["overdue"], routine["breached_at"]) == (True, None)  # not yet recorded
    Timers(client.flow.runtime).fire_due()  # the scheduler's sweep records the breach
    routine = task_of(client, routine["id"])
    assert (routine["overdue"], routine["breached_at"]) == (True, "2026-11-27T11:00:00+00:00")
    assert task_of(client, client.task(iid, "urgent"))["overdue"] is False  # no due time
    # every answer that carries the task says so, as the engine read it
    claimed = ok(client.post(f"{V1}/tasks/{routine['id']}/claim", "cashier"))
    assert claimed["overdue"] is True
    detail = ok(client.get(f"{V1}/instances/{iid}", "cashier"))
    assert {t["element_id"]: t["overdue"] for t in detail["tasks"]} == {
        "urgent": False,
        "normal": False,
        "routine": True,
    }
    done = client.complete(client.task(iid, "urgent"), "cashier")
    assert done["overdue"] is False  # completed: no longer open
    assert {t["id"]: t["overdue"] for t in done["next_tasks"]}[routine["id"]] is True


def test_a_completion_answers_with_the_tasks_left_open(client: ApiClient) -> None:
    """Tasks the completion did not touch are read back as they stand (claimed too)."""
    client.deploy([TRIAGE])
    iid = client.start("triage", "cashier", business_key="T-1")
    urgent, normal, routine = (client.task(iid, e) for e in ("urgent", "normal", "routine"))
    ok(client.post(f"{V1}/tasks/{routine}/claim", "cashier"))
    body = client.complete(urgent, "cashier")
    assert [t["id"] for t in body["next_tasks"]] == [normal, routine]
    assert body["next_tasks"] == [summary_of(client, normal), summary_of(client, routine)]
    assert [(t["state"], t["assignee"]) for t in body["next_tasks"]] == [
        ("open", None),
        ("claimed", "cashier"),
    ]


# --- one task ----------------------------------------------------------------------------


def test_a_task_with_its_form_and_data(deployed: ApiClient) -> None:
    iid = deployed.start(
        "document_review", "clerk", variables={"customer": "ACME", "invoice_number": "INV-1"}
    )
    prepare = deployed.task(iid, "prepare_documents")
    detail = task_of(deployed, prepare, "clerk")
    assert detail.keys() >= TASK_FIELDS | {"form", "data"}
    assert (detail["id"], detail["form_id"], detail["state"]) == (
        prepare,
        "prepare_documents",
        "open",
    )
    assert detail["form"]["id"] == "prepare_documents"
    keys = [c["key"] for c in detail["form"]["components"]]
    assert keys == ["invoice_number", "packing_list_ready", "bill_of_lading_number"]
    # only what the task's formInputs list: not every variable of the instance
    assert detail["data"] == {"invoice_number": "INV-1"}

    deployed.complete(prepare, "clerk", invoice_number="INV-7", packing_list_ready=True)
    review = task_of(deployed, deployed.task(iid, "review_documents"), "checker")
    assert review["form"]["id"] == "review_documents"
    assert review["data"] == {}  # a review's form starts empty
    assert task_of(deployed, prepare, "auditor")["state"] == "completed"  # auditors read all

    problem(deployed.get(f"{V1}/tasks/{prepare}", "sales"), 403, "not-in-role")
    problem(deployed.get(f"{V1}/tasks/{prepare}", "checker"), 403, "not-in-role")
    problem(deployed.get(f"{V1}/tasks/{prepare}"), 401)
    problem(deployed.get(f"{V1}/tasks/999999", "clerk"), 404, "not-found")


# --- claim, unclaim, delegate ------------------------------------------------------------


def test_refused_claims_change_nothing(deployed: ApiClient) -> None:
    iid = deployed.start("document_review", "clerk")
    task = deployed.task(iid, "prepare_documents")
    for user, status, slug in [
        ("checker", 403, "not-in-role"),
        ("sales", 403, "not-in-role"),
        ("auditor", 403, "not-in-role"),
        ("admin", 403, "not-in-role"),
        (None, 401, None),
    ]:
        with deployed.unchanged():
            problem(deployed.post(f"{V1}/tasks/{task}/claim", user), status, slug)
    assert task_of(deployed, task)["state"] == "open"

    ok(deployed.post(f"{V1}/tasks/{task}/claim", "clerk"))
    with deployed.unchanged():
        body = problem(deployed.post(f"{V1}/tasks/{task}/claim", "clerk2"), 409)
        assert body["type"] == "urn:tradeflow:problem:task-already-claimed"
        problem(deployed.post(f"{V1}/tasks/999999/claim", "clerk"), 404, "not-found")
    assert task_of(deployed, task)["assignee"] == "clerk"

    deployed.complete(task, "clerk", invoice_number="INV-1")
    with deployed.unchanged():
        problem(deployed.post(f"{V1}/tasks/{task}/claim", "clerk"), 409, "task-not-open")
        problem(deployed.post(f"{V1}/tasks/{task}/unclaim", "clerk"), 409, "task-not-open")


def test_unclaim_gives_the_task_back(deployed: ApiClient) -> None:
    iid = deployed.start("document_review", "clerk")
    task = deployed.task(iid, "prepare_documents")
    ok(deployed.post(f"{V1}/tasks/{task}/claim", "clerk"))
    # a colleague in the role learns who holds it; an outsider only that it's not theirs
    for user, status in [("clerk2", 409), ("checker", 403), (None, 401)]:
        with deployed.unchanged():
            problem(deployed.post(f"{V1}/tasks/{task}/unclaim", user), status)

    body = ok(deployed.post(f"{V1}/tasks/{task}/unclaim", "clerk"))
    assert (body["state"], body["assignee"]) == ("open", None)
    assert inbox(deployed, "clerk2") == [(iid, "prepare_documents")]
    event = deployed.flow.history(iid)[-1]
    assert (event.kind, event.actor, event.data["previous_assignee"]) == (
        "task_unclaimed",
        "clerk",
        "clerk",
    )

    ok(deployed.post(f"{V1}/tasks/{task}/claim", "clerk2"))
    body = ok(deployed.post(f"{V1}/tasks/{task}/unclaim", "admin"))  # admins free any task
    assert (body["state"], body["assignee"]) == ("open", None)


def test_unclaiming_another_users_task_is_a_conflict(deployed: ApiClient) -> None:
    task = deployed.task(deployed.start("document_review", "clerk"), "prepare_documents")
    ok(deployed.post(f"{V1}/tasks/{task}/claim", "clerk"))
    with deployed.unchanged():
        problem(deployed.post(f"{V1}/tasks/{task}/unclaim", "clerk2"), 409, "task-already-claimed")


def test_delegate_hands_the_task_over(deployed: ApiClient) -> None:
    iid = deployed.start("document_review", "clerk")
    task = deployed.task(iid, "prepare_documents")
    body = ok(deployed.post(f"{V1}/tasks/{task}/delegate", "clerk", json={"user": "clerk2"}))
    assert (body["state"], body["assignee"]) == ("claimed", "clerk2")
    assert inbox(deployed, "clerk") == []
    assert inbox(deployed, "clerk2", assignee="me") == [(iid, "prepare_documents")]
    event = deployed.flow.history(iid)[-1]
    assert (event.kind, event.actor) == ("task_delegated", "clerk")
    assert (event.data["from"], event.data["to"]) == (None, "clerk2")

    said = {}
    for user, payload, status, slug in [
        ("clerk", {"user": "allrounder"}, 409, "task-already-claimed"),  # clerk2 holds it
        ("clerk2", {"user": "checker"}, 422, "delegation-refused"),  # not in the role
        ("clerk2", {"user": "nobody"}, 422, "delegation-refused"),  # and unknown: alike
        ("clerk2", {}, 422, None),
        ("clerk2", {"user": ""}, 422, None),
        (None, {"user": "clerk"}, 401, None),
    ]:
        with deployed.unchanged():
            found = problem(
                deployed.post(f"{V1}/tasks/{task}/delegate", user, json=payload), status, slug
            )
        if status == 422:
            assert [e["field"] for e in found["errors"]] == ["user"]
        if slug == "delegation-refused":
            said[payload["user"]] = found["detail"].replace(f"'{payload['user']}'", "NAME")
    assert said["checker"] == said["nobody"]  # which names exist is not told

    body = ok(deployed.post(f"{V1}/tasks/{task}/delegate", "admin", json={"user": "allrounder"}))
    assert body["assignee"] == "allrounder"

    other = deployed.task(deployed.start("document_review", "clerk"), "prepare_documents")
    with deployed.unchanged():
        problem(
            deployed.post(f"{V1}/tasks/{other}/delegate", "sales", json={"user": "clerk"}),
            403,
            "not-in-role",
        )


# --- complete ----------------------------------------------------------------------------


def test_complete_checks_the_form(deployed: ApiClient) -> None:
    iid = deployed.start("payment_collection", "cashier", business_key="SO-1")
    task = deployed.task(iid, "issue_invoice")
    bad = {"invoice_amount": -5, "currency": "GBP", "surprise": 1}
    for data, fields in [
        (bad, ["currency", "invoice_amount", "surprise"]),
        ({}, ["currency", "invoice_amount"]),
        ({"invoice_amount": "lots", "currency": "USD"}, ["invoice_amount"]),
    ]:
        with deployed.unchanged():
            response = deployed.post(f"{V1}/tasks/{task}/complete", "cashier", json={"data": data})
            body = problem(response, 422, "form-invalid")
        assert sorted(e["field"] for e in body["errors"]) == fields
        assert all(e["message"] for e in body["errors"])
    for payload in ({"data": [1, 2]}, {"data": "x"}, [1]):
        with deployed.unchanged():
            problem(deployed.post(f"{V1}/tasks/{task}/complete", "cashier", json=payload), 422)
    assert (task_of(deployed, task)["state"], task_of(deployed, task)["assignee"]) == ("open", None)

    body = deployed.complete(task, "cashier", invoice_amount=1000, currency="USD")
    assert (body["id"], body["state"], body["assignee"]) == (task, "completed", "cashier")
    variables = ok(deployed.get(f"{V1}/instances/{iid}", "cashier"))["variables"]
    assert (variables["invoice_amount"], variables["currency"]) == (1000, "USD")
    assert deployed.kinds(iid)[-2:] == ["task_claimed", "task_completed"]

    with deployed.unchanged():
        response = deployed.post(
            f"{V1}/tasks/{task}/complete",
            "cashier",
            json={"data": {"invoice_amount": 1, "currency": "USD"}},
        )
        problem(response, 409, "task-not-open")
        problem(deployed.post(f"{V1}/tasks/999999/complete", "cashier", json={"data": {}}), 404)


def test_refused_completions_change_nothing(deployed: ApiClient) -> None:
    iid = deployed.start("document_review", "clerk")
    task = deployed.task(iid, "prepare_documents")
    data = {"data": {"invoice_number": "INV-1"}}
    for user, status, slug in [
        ("checker", 403, "not-in-role"),
        ("cashier", 403, "not-in-role"),
        ("admin", 403, "not-in-role"),
        (None, 401, None),
    ]:
        with deployed.unchanged():
            problem(deployed.post(f"{V1}/tasks/{task}/complete", user, json=data), status, slug)
    ok(deployed.post(f"{V1}/tasks/{task}/claim", "clerk"))
    with deployed.unchanged():
        problem(
            deployed.post(f"{V1}/tasks/{task}/complete", "clerk2", json=data),
            409,
            "task-already-claimed",
        )
    assert deployed.open_elements(iid) == ["prepare_documents"]


def test_other_methods_are_405(deployed: ApiClient) -> None:
    task = deployed.task(deployed.start("document_review", "clerk"), "prepare_documents")
    for method, url in [
        ("POST", "/tasks"),
        ("DELETE", f"/tasks/{task}"),
        ("GET", f"/tasks/{task}/claim"),
        ("PUT", f"/tasks/{task}/complete"),
    ]:
        with deployed.unchanged():
            response = deployed.request(method, V1 + url, "clerk")
            problem(response, 405)
        assert response.headers["Allow"]


# --- the document review, end to end -------------------------------------------------------


def test_document_review_from_deployment_to_a_verified_trail(client: ApiClient) -> None:
    client.deploy(fixture_files())
    iid = client.start("document_review", "allrounder", business_key="SO-2026-114")

    [prepare] = ok(client.get(f"{V1}/tasks", "allrounder"))["items"]
    assert (prepare["instance_id"], prepare["element_id"]) == (iid, "prepare_documents")
    ok(client.post(f"{V1}/tasks/{prepare['id']}/claim", "allrounder"))
    client.clock.advance(minutes=30)
    client.complete(prepare["id"], "allrounder", invoice_number="INV-88", packing_list_ready=True)

    [review] = ok(client.get(f"{V1}/tasks", "checker"))["items"]
    assert (review["element_id"], review["roles"]) == ("review_documents", ["risk_compliance"])
    # maker-checker: who prepared may not review, by claim, completion or delegation
    with client.unchanged():
        refusals = [
            client.post(f"{V1}/tasks/{review['id']}/claim", "allrounder"),
            client.post(
                f"{V1}/tasks/{review['id']}/complete",
                "allrounder",
                json={"data": {"documents_ok": True}},
            ),
            client.post(
                f"{V1}/tasks/{review['id']}/delegate", "checker", json={"user": "allrounder"}
            ),
        ]
        for response in refusals:
            body = problem(response, 403, "separation-of-duty")
            assert "prepare_documents" in body["detail"]
    assert task_of(client, review["id"])["state"] == "open"

    # sent back once, then accepted; each completion answers with what is open next
    sent_back = client.complete(
        review["id"], "checker", documents_ok=False, review_comment="B/L missing"
    )
    again = client.task(iid, "prepare_documents")
    assert [(t["id"], t["element_id"], t["state"]) for t in sent_back["next_tasks"]] == [
        (again, "prepare_documents", "open")
    ]
    assert sent_back["next_tasks"] == [summary_of(client, again)]
    assert sent_back["next_tasks"][0]["business_key"] == "SO-2026-114"
    redone = client.complete(again, "clerk", invoice_number="INV-88", bill_of_lading_number="BL-1")
    final = client.task(iid, "review_documents")
    assert [t["id"] for t in redone["next_tasks"]] == [final]
    assert client.complete(final, "checker", documents_ok=True)["next_tasks"] == []

    detail = ok(client.get(f"{V1}/instances/{iid}", "auditor"))
    assert (detail["status"], detail["tasks"]) == ("completed", [])
    assert detail["variables"]["bill_of_lading_number"] == "BL-1"
    assert inbox(client, "checker") == inbox(client, "clerk") == []

    trail = ok(client.get(f"{V1}/instances/{iid}/audit", "auditor"))["items"]
    assert [e["kind"] for e in trail] == [
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
    assert [e["seq"] for e in trail] == list(range(1, len(trail) + 1))
    assert [e["actor"] for e in trail if e["kind"] == "task_completed"] == [
        "allrounder",
        "checker",
        "clerk",
        "checker",
    ]
    verified = ok(client.get(f"{V1}/instances/{iid}/audit/verify", "auditor"))
    assert (verified["valid"], verified["first_bad_seq"]) == (True, None)
    assert verified["events"] == len(trail)


# --- a form never starts pre-decided ------------------------------------------------------


def test_a_start_may_not_decide_a_later_step(deployed: ApiClient) -> None:
    with deployed.unchanged():
        body = problem(
            deployed.post(
                f"{V1}/instances",
                "clerk",
                json={
                    "definition": "document_review",
                    "variables": {"documents_ok": True, "review_comment": "fine", "x": 1},
                },
            ),
            422,
            "form-invalid",
        )
    assert sorted(e["field"] for e in body["errors"]) == [
        "variables.documents_ok",
        "variables.review_comment",
    ]
    assert "decided at step 'review_documents'" in body["errors"][0]["message"]


def test_a_rejected_reviews_comment_does_not_come_back_with_the_next_round(
    deployed: ApiClient,
) -> None:
    iid = deployed.start("document_review", "clerk")
    deployed.complete(deployed.task(iid, "prepare_documents"), "clerk", invoice_number="INV-1")
    deployed.complete(
        deployed.task(iid, "review_documents"),
        "checker",
        documents_ok=False,
        review_comment="HS code wrong",
    )
    again = deployed.task(iid, "prepare_documents")
    assert task_of(deployed, again, "clerk")["data"] == {"invoice_number": "INV-1"}  # own work
    deployed.complete(again, "clerk", invoice_number="INV-2")
    second = deployed.task(iid, "review_documents")
    assert task_of(deployed, second, "checker")["data"] == {}  # no box ticked, no comment
    deployed.complete(second, "checker", documents_ok=True)  # approves, says nothing
    variables = ok(deployed.get(f"{V1}/instances/{iid}", "checker"))["variables"]
    assert (variables["documents_ok"], variables["review_comment"]) == (True, None)
    approved = [e for e in deployed.flow.history(iid) if e.kind == "task_completed"][-1]
    assert approved.data["changes"]["review_comment"] == ["HS code wrong", None]
    reworked = [e for e in deployed.flow.history(iid) if e.kind == "task_completed"][-2]
    assert (reworked.actor, reworked.data["started_from"]) == ("clerk", {"invoice_number": "INV-1"})

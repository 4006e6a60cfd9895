"""/api/v1/analytics/elements on a history made here, whose figures are known in advance."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import V1, ApiClient, ok, problem


def history(client: ApiClient) -> list[int]:
    """Three document reviews, times chosen so every figure is known:

    prepare_documents waits 1, 2 and 3 h before it is claimed and takes 10, 20, 30 min;
    the first review sends the documents back once (a rework of both steps); reviews are
    claimed at once and take 1 h."""
    started = []
    for n, wait in enumerate((1, 2, 3), start=1):
        iid = client.start("document_review", "clerk", business_key=f"SO-{n}")
        started.append(iid)
        rounds = 2 if n == 1 else 1
        for r in range(rounds):
            prepare = client.task(iid, "prepare_documents")
            client.clock.advance(hours=wait if r == 0 else 0)
            ok(client.post(f"{V1}/tasks/{prepare}/claim", "clerk"))
            client.clock.advance(minutes=10 * n if r == 0 else 5)
            client.complete(prepare, "clerk", invoice_number=f"INV-{n}-{r}")
            review = client.task(iid, "review_documents")
            ok(client.post(f"{V1}/tasks/{review}/claim", "checker"))
            client.clock.advance(hours=1)
            client.complete(review, "checker", documents_ok=r == rounds - 1)
    return started


def elements(client: ApiClient, user: str = "auditor", **query: Any) -> dict[str, Any]:
    body = ok(client.get(f"{V1}/analytics/elements", user, query_string=query))
    return {item["element_id"]: item for item in body["items"]}


def test_waiting_working_and_rework_per_step(deployed: ApiClient) -> None:
    history(deployed)
    found = elements(deployed, definition="document_review")
    prepare, review = found["prepare_documents"], found["review_documents"]
    assert (prepare["count"], prepare["completed"], prepare["reworked"]) == (4, 4, 1)
    # waits: 1 h, 0 (the rework, claimed at once), 2 h, 3 h -> p50 1 h, p90 3 h
    assert (prepare["wait_p50"], prepare["wait_p90"]) == (3600.0, 10800.0)
    # work: 10 min, 5 min (rework), 20 min, 30 min -> p50 10 min, p90 30 min
    assert (prepare["work_p50"], prepare["work_p90"]) == (600.0, 1800.0)
    assert (review["count"], review["reworked"], review["wait_p90"]) == (4, 1, 0.0)
    assert review["work_p50"] == review["work_p90"] == 3600.0
    assert prepare["on_time_rate"] == review["on_time_rate"] == 1.0
    assert list(found) == ["prepare_documents", "review_documents"]  # busiest first, then id


def test_filters_and_time_limits(deployed: ApiClient) -> None:
    history(deployed)
    assert elements(deployed, definition="payment_collection") == {}
    assert set(elements(deployed, role="risk_compliance")) == {"review_documents"}
    # a period takes the tasks that ended in it, and the open ones created in it
    late = deployed.clock.advance(seconds=1).isoformat()
    assert elements(deployed, since=late) == {}
    # a review left open two working days past its 8 working hours counts as overdue
    iid = deployed.start("document_review", "clerk", business_key="SO-9")
    deployed.complete(deployed.task(iid, "prepare_documents"), "clerk", invoice_number="I")
    deployed.clock.advance(days=5)
    assert elements(deployed, since=late)["review_documents"]["overdue"] == 1
    # done late: it counts against the step's on-time rate (it had none before)
    deployed.complete(deployed.task(iid, "review_documents"), "checker", documents_ok=True)
    review = elements(deployed, since=late)["review_documents"]
    assert (review["overdue"], review["on_time_rate"]) == (1, 0.0)


def test_who_may_see_analytics(deployed: ApiClient) -> None:
    for user in ("auditor", "owner", "admin"):
        ok(deployed.get(f"{V1}/analytics/elements", user))
    with deployed.unchanged():
        problem(deployed.get(f"{V1}/analytics/elements", "clerk"), 403)
        problem(deployed.get(f"{V1}/analytics/elements"), 401)
        problem(deployed.get(f"{V1}/analytics/elements", "auditor",
                             query_string={"since": "yesterday"}), 422)  # fmt: skip


def test_kpis_from_the_same_history(deployed: ApiClient) -> None:
    history(deployed)
    body = ok(deployed.get(f"{V1}/kpis", "auditor", query_string={"definition": "document_review"}))
    # of three first reviews, SO-1's sent the documents back: 2 of 3 passed first time
    assert body["document_first_pass_rate"] == 2 / 3
    # every step was done within its limit (prepare: a working day; review: 8 h)
    assert body["on_time_rate"] == 1.0
    assert body["workload"]["documents_logistics"] == {"open": 0, "completed": 4, "overdue": 0}
    assert body["workload"]["risk_compliance"]["completed"] == 4
    assert body["inquiry_response_p50"] is None  # no inquiries in this history


def test_inquiry_response_counts_the_first_quotation(client: ApiClient) -> None:
    from tests.content.conftest import QUOTE, shipped_files

    client.deploy(shipped_files())
    client.tokens["marketer"] = client.flow.add_user("marketer", ["market_development"])[1]
    for hours in (2, 5, 30):
        iid = client.start("inquiry_to_collection", "marketer")
        client.clock.advance(hours=hours)
        client.complete(client.task(iid, "prepare_quotation"), "marketer", **QUOTE)
    query = {"definition": "inquiry_to_collection"}
    body = ok(client.get(f"{V1}/kpis", "auditor", query_string=query))
    assert (body["inquiry_response_p50"], body["inquiry_response_p90"]) == (5 * 3600, 30 * 3600)
    # 30 h of wall clock over a weekend is within 24 working hours: all on time
    assert body["on_time_rate"] == 1.0


def test_the_instances_behind_the_figures(deployed: ApiClient) -> None:
    first, second, third = history(deployed)
    body = ok(deployed.get(f"{V1}/kpis/instances", "auditor",
                           query_string={"measure": "document_first_pass_rate"}))  # fmt: skip
    assert body["items"] == [
        {"instance_id": first, "business_key": "SO-1", "value": False},
        {"instance_id": second, "business_key": "SO-2", "value": True},
        {"instance_id": third, "business_key": "SO-3", "value": True},
    ]
    # the same slices as the figures: SO-1's reviews were done by the checker, not the clerk
    assert ok(deployed.get(f"{V1}/analytics/elements/prepare_documents/instances", "owner",
                           query_string={"user": "clerk"}))["items"] == [
        {"instance_id": i, "business_key": f"SO-{n}", "value": 0}
        for n, i in enumerate((first, second, third), start=1)
    ]  # fmt: skip
    assert ok(deployed.get(f"{V1}/analytics/elements/review_documents/instances", "owner",
                           query_string={"user": "clerk"}))["items"] == []  # fmt: skip
    checker = ok(deployed.get(f"{V1}/analytics/elements", "auditor",
                              query_string={"user": "checker"}))["items"]  # fmt: skip
    assert [item["element_id"] for item in checker] == ["review_documents"]
    with deployed.unchanged():
        refused = problem(deployed.get(f"{V1}/kpis/instances", "auditor",
                                       query_string={"measure": "bogus"}), 422)  # fmt: skip
        assert "measure" in str(refused["errors"])
        problem(deployed.get(f"{V1}/kpis/instances", "auditor"), 422)
        problem(deployed.get(f"{V1}/kpis/instances", "clerk",
                             query_string={"measure": "bad_debt_rate"}), 403)  # fmt: skip
        problem(deployed.get(f"{V1}/analytics/elements/x/instances", "clerk"), 403)

"""/api/v1/queues: open, claimed and overdue counts per role the caller can see."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import TRIAGE, V1, ApiClient, ok, problem


def queues(client: ApiClient, user: str) -> dict[str, tuple[int, int, int]]:
    body = ok(client.get(f"{V1}/queues", user))
    items: list[dict[str, Any]] = body["items"]
    assert [q["role"] for q in items] == sorted(q["role"] for q in items)
    return {q["role"]: (q["open"], q["claimed"], q["overdue"]) for q in items}


def test_counts_per_visible_role(deployed: ApiClient) -> None:
    assert queues(deployed, "clerk") == {"documents_logistics": (0, 0, 0)}
    assert queues(deployed, "auditor") == {}

    first = deployed.start("document_review", "clerk")
    deployed.start("document_review", "clerk")
    deployed.start("payment_collection", "cashier")
    ok(deployed.post(f"{V1}/tasks/{deployed.task(first, 'prepare_documents')}/claim", "clerk"))

    # `open` counts every open task of the queue, the claimed ones among them
    assert queues(deployed, "clerk") == {"documents_logistics": (2, 1, 0)}
    assert queues(deployed, "clerk2") == {"documents_logistics": (2, 1, 0)}
    assert queues(deployed, "cashier") == {"finance": (1, 0, 0)}
    assert queues(deployed, "allrounder") == {
        "documents_logistics": (2, 1, 0),
        "risk_compliance": (0, 0, 0),
    }
    everything = {"documents_logistics": (2, 1, 0), "finance": (1, 0, 0)}
    assert queues(deployed, "auditor") == everything
    assert queues(deployed, "admin") == everything
    assert queues(deployed, "bank") == {}  # no role, nothing to see
    assert queues(deployed, "owner") == {}

    deployed.complete(deployed.task(first, "prepare_documents"), "clerk", invoice_number="I-1")
    assert queues(deployed, "checker") == {"risk_compliance": (1, 0, 0)}
    assert queues(deployed, "clerk") == {"documents_logistics": (1, 0, 0)}


def test_queues_need_a_token_and_are_read_only(deployed: ApiClient) -> None:
    problem(deployed.get(f"{V1}/queues"), 401)
    problem(deployed.get(f"{V1}/queues", headers={"Authorization": "Bearer tf_nope"}), 401)
    for method in ("POST", "PUT", "DELETE"):
        response = deployed.request(method, f"{V1}/queues", "admin")
        problem(response, 405)
        assert "GET" in response.headers["Allow"]


def test_overdue_tasks_are_counted(client: ApiClient) -> None:
    client.deploy([TRIAGE])
    client.start("triage", "cashier")
    assert queues(client, "cashier") == {"finance": (3, 0, 0)}
    client.clock.advance(hours=2)
    assert queues(client, "cashier") == {"finance": (3, 0, 1)}

"""Bearer tokens (401), and every error as RFC 9457 application/problem+json."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import update

from engine.people.users import token_digest
from engine.storage import ApiToken
from tests.api.conftest import V1, ApiClient, ok, problem

# one request of each resource (method, path, JSON body)
ENDPOINTS: list[tuple[str, str, Any]] = [
    ("GET", "/definitions", None),
    ("GET", "/definitions/document_review", None),
    ("GET", "/definitions/document_review/xml", None),
    ("GET", "/instances", None),
    ("POST", "/instances", {"definition": "document_review"}),
    ("GET", "/instances/1", None),
    ("POST", "/instances/1/cancel", None),
    ("GET", "/instances/1/audit", None),
    ("GET", "/instances/1/audit/verify", None),
    ("GET", "/tasks", None),
    ("GET", "/tasks/1", None),
    ("POST", "/tasks/1/claim", None),
    ("POST", "/tasks/1/unclaim", None),
    ("POST", "/tasks/1/delegate", {"user": "clerk2"}),
    ("POST", "/tasks/1/complete", {"data": {"invoice_number": "I-1"}}),
    ("GET", "/queues", None),
    ("POST", "/messages", {"name": "payment_received", "business_key": "SO-1"}),
    ("GET", "/audit", None),
]


def test_health_needs_no_token(client: ApiClient) -> None:
    for headers in ({}, {"Authorization": "Bearer tf_not_a_token"}):
        response = client.get(f"{V1}/health", headers=headers)
        assert ok(response) == {
            "status": "ok",
            "checks": {"database": {"status": "ok", "detail": None}},
        }


def test_every_endpoint_wants_a_known_bearer_token(deployed: ApiClient) -> None:
    iid = deployed.start("document_review", "clerk")
    assert iid == 1
    _, second_token = deployed.flow.add_user("clerk")  # another token, same user
    assert ok(deployed.get(f"{V1}/tasks", headers={"Authorization": f"bearer {second_token}"}))
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer   "},
        {"Authorization": f"Basic {deployed.tokens['admin']}"},
        {"Authorization": deployed.tokens["admin"]},
        {"Authorization": "Bearer tf_unknown"},
        {"Authorization": f"Bearer {deployed.tokens['admin']}x"},
    ]
    with deployed.unchanged():
        for method, path, body in ENDPOINTS:
            for headers in bad_headers:
                response = deployed.request(method, V1 + path, headers=headers, json=body)
                problem(response, 401)
                assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_token_is_refused(deployed: ApiClient) -> None:
    assert ok(deployed.get(f"{V1}/queues", "clerk"))
    with deployed.flow.db.transaction() as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.token_sha256 == token_digest(deployed.tokens["clerk"]))
            .values(revoked_at=datetime(2026, 11, 27, tzinfo=UTC))
        )
    body = problem(deployed.get(f"{V1}/queues", "clerk"), 401)
    assert "revoked" in body["detail"]
    assert ok(deployed.get(f"{V1}/queues", "clerk2"))  # others' tokens still work


def test_unknown_urls_are_404_problems(client: ApiClient) -> None:
    for user in (None, "admin"):
        for path in ("/api/v1/nothing", "/api/v2/tasks", "/api/v1/tasks/abc", "/nothing"):
            problem(client.get(path, user), 404)


def test_wrong_methods_are_405_problems_with_allow(client: ApiClient) -> None:
    response = client.request("PATCH", f"{V1}/tasks/1/claim", "clerk")
    problem(response, 405)
    assert "POST" in response.headers["Allow"]
    response = client.request("DELETE", f"{V1}/health")
    problem(response, 405)
    assert "GET" in response.headers["Allow"]


def test_malformed_json_is_a_400_problem(deployed: ApiClient) -> None:
    for path in ("/instances", "/tasks/1/complete", "/messages", "/tasks/1/delegate"):
        with deployed.unchanged():
            response = deployed.post(
                V1 + path, "admin", data="{oops", content_type="application/json"
            )
            body = problem(response, 400)
        assert body["errors"]


def test_too_large_an_upload_is_a_413_problem(client: ApiClient) -> None:
    with client.unchanged():
        response = client.post(
            f"{V1}/definitions",
            "owner",
            data=b"x" * (25 * 1024 * 1024 + 1),
            content_type="multipart/form-data; boundary=xyz",
        )
        problem(response, 413)


def test_an_unexpected_failure_is_a_500_problem_without_internals(
    deployed: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    iid = deployed.start("document_review", "clerk")

    def broken(instance_id: int) -> None:
        raise RuntimeError("secret connection string")

    monkeypatch.setattr(deployed.flow, "instance", broken)
    response = deployed.get(f"{V1}/instances/{iid}", "auditor")
    body = problem(response, 500)
    assert "secret" not in response.get_data(as_text=True)
    assert body["type"] == "about:blank"


def test_domain_errors_carry_their_type(deployed: ApiClient) -> None:
    """The mapping in api/errors.py, one domain error of each family."""
    iid = deployed.start("document_review", "clerk")
    task = deployed.task(iid, "prepare_documents")
    ok(deployed.post(f"{V1}/tasks/{task}/claim", "clerk"))
    seen = {
        problem(deployed.get(f"{V1}/instances/999", "auditor"), 404)["type"],
        problem(deployed.post(f"{V1}/tasks/{task}/claim", "clerk2"), 409)["type"],
        problem(deployed.post(f"{V1}/tasks/{task}/claim", "checker"), 403)["type"],
        problem(deployed.get(f"{V1}/audit", "clerk"), 403)["type"],
        problem(deployed.post(f"{V1}/tasks/{task}/complete", "clerk", json={"data": {}}), 422)[
            "type"
        ],
    }
    assert seen == {
        f"urn:tradeflow:problem:{slug}"
        for slug in (
            "not-found",
            "task-already-claimed",
            "not-in-role",
            "forbidden",
            "form-invalid",
        )
    }


def test_a_caller_who_may_not_act_gets_403_whatever_the_body(deployed: ApiClient) -> None:
    iid = deployed.start("document_review", "clerk")
    for user, path, body in [
        ("clerk", f"/instances/{iid}/cancel", {"reason": 5}),
        ("clerk", "/messages", {}),
        ("auditor", "/instances", {}),
    ]:
        with deployed.unchanged():
            problem(deployed.post(V1 + path, user, json=body), 403, "forbidden")

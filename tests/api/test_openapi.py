"""/api/v1/openapi.json and the browsable /api/v1/docs (both public, served offline).

The document does not depend on the database, so these run on one plain SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from api import create_app
from engine.storage import Database
from engine.tradeflow import Tradeflow
from tests.api.conftest import PROBLEM, V1, ok, problem

OPERATIONS = {
    "/definitions": {"get", "post"},
    "/definitions/{key}": {"get"},
    "/definitions/{key}/xml": {"get"},
    "/instances": {"get", "post"},
    "/instances/{instance_id}": {"get"},
    "/instances/{instance_id}/cancel": {"post"},
    "/instances/{instance_id}/audit": {"get"},
    "/instances/{instance_id}/audit/verify": {"get"},
    "/tasks": {"get"},
    "/tasks/{task_id}": {"get"},
    "/tasks/{task_id}/claim": {"post"},
    "/tasks/{task_id}/unclaim": {"post"},
    "/tasks/{task_id}/delegate": {"post"},
    "/tasks/{task_id}/complete": {"post"},
    "/queues": {"get"},
    "/messages": {"post"},
    "/audit": {"get"},
}
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
def http(tmp_path: Path) -> FlaskClient:
    db = Database(f"sqlite:///{tmp_path / 'docs.db'}")
    return create_app({"TRADEFLOW": Tradeflow(db)}).test_client()


@pytest.fixture
def doc(http: FlaskClient) -> dict[str, Any]:
    return dict(ok(http.get(f"{V1}/openapi.json")))  # no token needed


def _operations(doc: dict[str, Any]) -> dict[str, set[str]]:
    return {path: set(item) & METHODS for path, item in doc["paths"].items()}


def _resolve(doc: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in response:
        *_, kind, name = response["$ref"].split("/")
        response = doc["components"][kind][name]
    return response


def test_the_document_lists_every_operation(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.0.3"
    assert (doc["info"]["title"], doc["info"]["version"]) == ("Tradeflow", "v1")
    operations = _operations(doc)
    for path, methods in OPERATIONS.items():
        assert operations.get(V1 + path) == methods, path
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert doc["security"] == [{"bearer": []}]


def test_query_parameters_and_bodies_are_documented(doc: dict[str, Any]) -> None:
    def query(path: str) -> set[str]:
        return {
            p["name"] for p in doc["paths"][V1 + path]["get"]["parameters"] if p["in"] == "query"
        }

    assert query("/tasks") >= {
        "role",
        "state",
        "assignee",
        "overdue",
        "instance_id",
        "business_key",
        "sort",
        "limit",
        "cursor",
    }
    assert query("/instances") >= {"status", "definition", "business_key", "limit"}
    assert query("/audit") >= {"since", "until", "actor", "kind", "definition"}
    assert query("/definitions/{key}/xml") == {"version"}
    for path in (
        "/instances",
        "/tasks/{task_id}/delegate",
        "/tasks/{task_id}/complete",
        "/messages",
    ):
        body = doc["paths"][V1 + path]["post"]["requestBody"]
        assert "application/json" in body["content"], path
    messages = doc["paths"][f"{V1}/messages"]["post"]["responses"]
    assert {"200", "202"} <= messages.keys()
    assert "201" in doc["paths"][f"{V1}/instances"]["post"]["responses"]
    assert "201" in doc["paths"][f"{V1}/definitions"]["post"]["responses"]


def test_health_is_documented(doc: dict[str, Any]) -> None:
    assert _operations(doc).get(f"{V1}/health") == {"get"}


def test_error_responses_are_documented_as_problem_json(doc: dict[str, Any]) -> None:
    for path, item in doc["paths"].items():
        for method in set(item) & METHODS:
            for status, response in item[method]["responses"].items():
                if status == "default" or int(status) >= 400:
                    content = _resolve(doc, response).get("content", {})
                    assert list(content) == [PROBLEM], (method, path, status)


def test_the_deploy_upload_is_documented(doc: dict[str, Any]) -> None:
    body = doc["paths"][f"{V1}/definitions"]["post"]["requestBody"]
    assert "multipart/form-data" in body["content"]


def test_the_docs_page_is_served_offline(http: FlaskClient) -> None:
    page = http.get(f"{V1}/docs")
    assert (page.status_code, page.mimetype) == (200, "text/html")
    html = page.get_data(as_text=True)
    assert f"{V1}/openapi.json" in html
    assert f"{V1}/docs/static/swagger-ui-bundle.js" in html  # no CDN
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        response = http.get(f"{V1}/docs/static/{asset}")
        assert response.status_code == 200, asset
        response.close()
    problem(http.get(f"{V1}/docs/static/no-such-file.js"), 404)
    problem(http.post(f"{V1}/openapi.json"), 405)

"""Fuzzing: schemathesis generates requests from /api/v1/openapi.json (valid ones and
invalid ones) and sends them to the app in-process, as an admin and as an employee.
Whatever it sends, no answer is a 5xx, and every answer has a status listed for its
operation, a documented content type and a body that fits the documented schema.

One database per module and kind (SQLite, PostgreSQL) serves every generated case: the
fixture diagrams deployed and a few instances running, so that half the time an id, key
or user name in a request names something real and the request gets past 404 into the
views' real work. The example count is bounded so the file stays quick in ``make test``;
``TRADEFLOW_FUZZ_EXAMPLES=500 TRADEFLOW_FUZZ_RANDOM=1`` digs deeper by hand.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api import create_app
from api.schemas import UNSTORABLE
from api.views import encode_cursor
from engine.people import Flags, users
from engine.storage import Database
from engine.tradeflow import Tradeflow
from tests.api.conftest import V1, ApiClient, multipart, problem
from tests.conftest import FakeClock, _postgres, _sqlite
from tests.engine.conftest import fixture_files

EXAMPLES = int(os.environ.get("TRADEFLOW_FUZZ_EXAMPLES", "25"))  # per operation
FEW = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("TRADEFLOW_FUZZ_RANDOM"),  # make test is no lottery
    database=None,
    suppress_health_check=list(HealthCheck),
)
USERS = {"admin": ([], Flags(admin=True)), "clerk": (["documents_logistics"], Flags())}
# what exists once the fixture has run (ids: its instances, their tasks, and later ones)
KNOWN = {
    "ids": list(range(1, 13)),
    "keys": ["document_review", "payment_collection", "order_fulfilment", "credit_check"],
    "users": list(USERS),
    "messages": ["payment_received"],
}
CONFIG = schemathesis.Config.from_dict(
    {
        "dictionaries": {name: {"values": values} for name, values in KNOWN.items()},
        "parameters": {
            parameter: {"dictionary": dictionary, "probability": 0.5}
            for parameter, dictionary in (
                ("path.instance_id", "ids"),
                ("path.task_id", "ids"),
                ("query.instance_id", "ids"),
                ("path.key", "keys"),
                ("query.definition", "keys"),
                ("body.definition", "keys"),
                ("body.user", "users"),
                ("body.name", "messages"),
            )
        },
    }
)
# The document does not depend on the database: read it from an app on an unused one.
schema = schemathesis.openapi.from_wsgi(
    f"{V1}/openapi.json",
    create_app({"TRADEFLOW": Tradeflow(Database("sqlite://"))}),
    config=CONFIG,
)


def status_listed(ctx: Any, response: Any, case: Any) -> None:
    """Stricter than ``status_code_conformance``, which any status passes when an
    operation has a ``default`` response (each has: flask-smorest's catch-all). Here the
    status must be listed for the operation itself; ``default`` stands for the 5xx alone,
    which ``not_a_server_error`` refuses anyway."""
    if case.method.upper() != case.operation.method.upper():
        return  # a method the path lacks (the coverage phase tries some): 405, the path's
    listed = set(case.operation.responses.status_codes) - {"default"}
    if response.status_code < 500 and str(response.status_code) not in listed:
        raise AssertionError(
            f"{response.status_code} is not listed for {case.operation.label}: {sorted(listed)}"
        )


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    status_listed,
    content_type_conformance,
    response_schema_conformance,
]


class Fuzzed:
    """The app under fuzzing, on its own database, with a token per kind of caller."""

    def __init__(self, app: Flask, tokens: dict[str, str]) -> None:
        self.app, self.tokens = app, tokens

    def call(self, case: Any, user: str) -> None:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        case.call_and_validate(app=self.app, headers=headers, checks=CHECKS)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def fuzzed(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
) -> Iterator[Fuzzed]:
    if request.param == "sqlite":
        databases = _sqlite(tmp_path_factory.mktemp("fuzz"), sqlite_template)
    else:
        databases = _postgres()
    db = next(databases)
    clock = FakeClock()
    flow = Tradeflow(db, clock)
    with db.transaction() as session:
        tokens = {
            name: users.add_user(session, name, roles, flags, clock.now())[1]
            for name, (roles, flags) in USERS.items()
        }
    flow.deploy(fixture_files(), actor="admin")
    for n in range(3):
        flow.start("document_review", actor="clerk", business_key=f"BK-{n}")
    yield Fuzzed(create_app({"TRADEFLOW": flow}), tokens)
    next(databases, None)  # dispose (and drop the PostgreSQL schema)


@schema.parametrize()
@FEW
def test_as_admin(case: Any, fuzzed: Fuzzed) -> None:
    fuzzed.call(case, "admin")


@schema.parametrize()
@settings(FEW, max_examples=max(1, EXAMPLES // 3))
def test_as_employee(case: Any, fuzzed: Fuzzed) -> None:
    fuzzed.call(case, "clerk")


# What the fuzzing found, pinned: each was a 500 (or a body off its schema) before.


def test_a_lint_problem_without_an_element_fits_the_schema(deployed: ApiClient) -> None:
    response = deployed.post(
        f"{V1}/definitions",
        "admin",
        data=multipart([("files.png", b"\x89PNG\r\n")]),
        content_type="multipart/form-data",
    )
    assert problem(response, 422)["errors"][0]["element"] is None  # documented nullable


@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    [
        ("GET", f"/instances/{2**31}", None, 404),
        ("POST", f"/tasks/{2**63}/delegate", {"user": "clerk"}, 404),
        ("POST", f"/instances/{2**63}/cancel", {}, 404),
        ("GET", f"/definitions/document_review/xml?version={2**63}", None, 422),
        ("POST", "/instances", {"definition": "document_review", "version": 2**63}, 422),
        ("GET", f"/tasks?instance_id={-(2**31) - 1}", None, 422),
        ("GET", f"/instances?offset={2**63}", None, 422),
        ("GET", f"/audit?offset={2**31}", None, 422),
        ("GET", f"/tasks?cursor={encode_cursor(2**63)}", None, 400),
    ],
)
def test_numbers_past_the_database_integer_name_nothing(
    deployed: ApiClient, method: str, url: str, body: Any, status: int
) -> None:
    with deployed.unchanged():
        problem(deployed.request(method, V1 + url, "admin", json=body), status)


START = {"definition": "document_review"}


@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    [
        ("GET", "/audit?actor=%00", None, "actor"),
        ("GET", "/instances?business_key=BK%00", None, "business_key"),
        ("GET", "/tasks?role=a%00", None, "role"),
        ("POST", "/instances", {"definition": "document_review\x00"}, "definition"),
        ("POST", "/instances", {**START, "variables": {"a\x00": 1}}, "variables"),
        ("POST", "/instances", {**START, "variables": {"a": ["\ud800"]}}, "variables"),
        ("POST", "/messages", {"name": "payment", "correlation": {"\x00": None}}, "correlation"),
        ("POST", "/tasks/1/complete", {"data": {"note": "\x00"}}, "data"),
        ("POST", "/tasks/1/delegate", {"user": "clerk\x00"}, "user"),
    ],
)
def test_text_no_database_keeps_is_refused_naming_the_field(
    deployed: ApiClient, method: str, url: str, body: Any, field: str
) -> None:
    """PostgreSQL's text and jsonb refuse NUL characters, and an unpaired surrogate is not
    UTF-8 at all: both were 500s."""
    with deployed.unchanged():
        found = problem(deployed.request(method, V1 + url, "admin", json=body), 422)
    assert found["errors"] == [{"field": field, "message": UNSTORABLE}]


def test_a_name_no_database_keeps_is_not_found(deployed: ApiClient) -> None:
    with deployed.unchanged():
        problem(deployed.get(f"{V1}/definitions/document%00review", "admin"), 404)
        problem(deployed.get(f"{V1}/definitions/document%00review/xml", "admin"), 404)
        files = [("a\x00" + name, content) for name, content in fixture_files()]
        response = deployed.post(
            f"{V1}/definitions", "admin", data=multipart(files), content_type="multipart/form-data"
        )
        problem(response, 422)


def test_json_nested_past_the_decoder_is_a_400(deployed: ApiClient) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with deployed.unchanged():
        response = deployed.post(
            f"{V1}/instances",
            "admin",
            data=f'{{"definition": "document_review", "variables": {{"a": {deep}}}}}',
            content_type="application/json",
        )
        problem(response, 400)


@pytest.mark.parametrize("text", [r"\ud800", r"\u0000"])
def test_a_form_with_text_no_database_keeps_is_refused(client: ApiClient, text: str) -> None:
    form = f'{{"id": "f{text}", "components": []}}'.encode()
    with client.unchanged():
        response = client.post(
            f"{V1}/definitions",
            "owner",
            data=multipart([("f.form", form)]),
            content_type="multipart/form-data",
        )
        problem(response, 422)

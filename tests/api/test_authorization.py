"""The authorization matrix: every endpoint x every kind of caller, with the status each
one gets (README, "The HTTP API": who may do what).

One row per endpoint (two for delegate: an open task and a claimed one), one column per
persona. ``test_every_endpoint_has_a_row`` fails when the app grows an endpoint this table
does not cover. A refused call (401, 403, 404) and every read must leave the database as
it was (``ApiClient.unchanged``); every state-changing call that is allowed acts on an
object made for that cell alone (a fresh instance, task or process key).

The cells share one deployed API per database and xdist worker (a fresh database and
deployment per cell would cost ~0.7 s each, ~300 cells); each cell arranges its own
objects, so none depends on another or on their order.

Also: ``tradeflow users revoke NAME`` (the real CLI, another process) stops a token the
running API accepted a moment before; a new token from ``users add`` works.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import TestResponse

from api import create_app
from engine.storage import Database
from engine.tradeflow import Tradeflow
from tests.api.conftest import USERS, V1, ApiClient, multipart, ok, problem
from tests.conftest import ROOT, FakeClock, _postgres, _sqlite
from tests.engine.conftest import fixture_files

TRADEFLOW = Path(sys.executable).with_name("tradeflow")

# The columns. Employees change per row (who is "in the role" depends on the endpoint).
PERSONAS = ("anonymous", "in_role", "outside_role", "owner", "auditor", "admin", "integration")
FIXED: dict[str, str | None] = {
    "anonymous": None,
    "owner": "owner",
    "auditor": "auditor",
    "admin": "admin",
    "integration": "bank",
}
# who may read a document_review started by clerk2 (README: auditors, admins and process
# owners every instance; an employee one in which one of their roles has a task)
READERS = {"in_role", "owner", "auditor", "admin"}

# public by design: answered without a token (test_public_endpoints_need_no_token)
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/health"): "/api/v1/health",
    ("GET", "/api/v1/openapi.json"): "/api/v1/openapi.json",
    ("GET", "/api/v1/docs"): "/api/v1/docs",
    ("GET", "/api/v1/docs/static/{name}"): "/api/v1/docs/static/swagger-ui.css",
}


@dataclass(frozen=True)
class Call:
    """One request as a cell makes it; ``check`` looks at the body of an allowed answer."""

    url: str
    json: Any = None
    files: list[tuple[str, bytes]] | None = None
    query: dict[str, Any] | None = None
    check: Callable[[Any], object] | None = None


# (client, persona, user) -> the request, after making what it needs
Arrange = Callable[[ApiClient, str, str | None], Call]


@dataclass(frozen=True)
class Row:
    endpoint: str  # "METHOD /path" as url_map has it, {id}/{key} for the variable parts
    arrange: Arrange
    in_role: str
    outside_role: str
    # anonymous, in_role, outside_role, owner, auditor, admin, integration
    statuses: tuple[int, int, int, int, int, int, int]
    bugs: Mapping[str, str] = field(default_factory=dict)  # persona -> xfail reason
    variant: str = ""  # a second row for the same endpoint

    @property
    def method(self) -> str:
        return self.endpoint.split(" ", 1)[0]

    @property
    def path(self) -> str:
        return self.endpoint.split(" ", 1)[1]

    @property
    def name(self) -> str:
        return f"{self.endpoint} ({self.variant})" if self.variant else self.endpoint

    def user(self, persona: str) -> str | None:
        if persona == "in_role":
            return self.in_role
        if persona == "outside_role":
            return self.outside_role
        return FIXED[persona]

    def status(self, persona: str) -> int:
        return self.statuses[PERSONAS.index(persona)]


# --- arranging: each cell makes its own objects ---------------------------------------


def _key() -> str:
    return f"AUTHZ-{uuid.uuid4().hex[:12]}"


def _review(api: ApiClient) -> tuple[int, str]:
    """A fresh document_review started by clerk2: prepare_documents open for
    documents_logistics (clerk reads it through that role, not as its starter)."""
    key = _key()
    return api.start("document_review", "clerk2", business_key=key), key


def _prepare(api: ApiClient) -> int:
    """A fresh open, unclaimed prepare_documents task (documents_logistics)."""
    iid, _ = _review(api)
    return api.task(iid, "prepare_documents")


def _claimed(api: ApiClient) -> int:
    """A fresh prepare_documents task claimed by clerk."""
    task = _prepare(api)
    ok(api.post(f"{V1}/tasks/{task}/claim", "clerk"))
    return task


def _probe_bpmn() -> tuple[str, tuple[str, bytes]]:
    """A new process (a key nobody deployed): deploying it is a new deployment."""
    key = f"authz_{uuid.uuid4().hex[:12]}"
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        f'id="{key}_definitions" targetNamespace="http://bpmn.io/schema/bpmn">'
        f'<bpmn:process id="{key}" name="Authorization probe" isExecutable="true">'
        '<bpmn:startEvent id="start" /><bpmn:endEvent id="end" />'
        '<bpmn:sequenceFlow id="flow" sourceRef="start" targetRef="end" />'
        "</bpmn:process></bpmn:definitions>"
    )
    return key, (f"{key}.bpmn", xml.encode())


def _roles(body: Any) -> list[str]:
    return [q["role"] for q in body["items"]]


def catalog(api: ApiClient, persona: str, user: str | None) -> Call:
    return Call(
        f"{V1}/definitions",
        check=lambda b: "document_review" in {d["key"] for d in b},
    )


def deploy(api: ApiClient, persona: str, user: str | None) -> Call:
    key, upload = _probe_bpmn()
    return Call(
        f"{V1}/definitions",
        files=[upload],
        check=lambda b: [d["key"] for d in b["definitions"]] == [key],
    )


def check(api: ApiClient, persona: str, user: str | None) -> Call:
    _, upload = _probe_bpmn()
    return Call(f"{V1}/definitions/check", files=[upload], check=lambda b: b == {"errors": []})


def versions(api: ApiClient, persona: str, user: str | None) -> Call:
    return Call(
        f"{V1}/definitions/document_review",
        check=lambda b: {d["key"] for d in b} == {"document_review"},
    )


def xml(api: ApiClient, persona: str, user: str | None) -> Call:
    return Call(f"{V1}/definitions/document_review/xml")


def instance_list(api: ApiClient, persona: str, user: str | None) -> Call:
    iid, key = _review(api)
    # 200 for everyone; the list holds what the caller may read
    return Call(
        f"{V1}/instances",
        query={"business_key": key},
        check=lambda b: ([i["id"] for i in b["items"]] == [iid]) == (persona in READERS),
    )


def start(api: ApiClient, persona: str, user: str | None) -> Call:
    key = _key()
    return Call(
        f"{V1}/instances",
        json={"definition": "document_review", "business_key": key},
        check=lambda b: (b["started_by"], b["business_key"], b["status"]) == (user, key, "running"),
    )


def instance(api: ApiClient, persona: str, user: str | None) -> Call:
    iid, _ = _review(api)
    return Call(f"{V1}/instances/{iid}", check=lambda b: b["id"] == iid)


def cancel(api: ApiClient, persona: str, user: str | None) -> Call:
    iid, _ = _review(api)
    return Call(
        f"{V1}/instances/{iid}/cancel",
        json={"reason": "authorization matrix"},
        check=lambda b: (b["id"], b["status"]) == (iid, "cancelled"),
    )


def instance_audit(api: ApiClient, persona: str, user: str | None) -> Call:
    iid, _ = _review(api)
    return Call(
        f"{V1}/instances/{iid}/audit",
        check=lambda b: b["items"][0]["kind"] == "instance_started",
    )


def verify(api: ApiClient, persona: str, user: str | None) -> Call:
    iid, _ = _review(api)
    return Call(f"{V1}/instances/{iid}/audit/verify", check=lambda b: b["valid"] is True)


def inbox(api: ApiClient, persona: str, user: str | None) -> Call:
    iid, _ = _review(api)
    task = api.task(iid, "prepare_documents")
    return Call(
        f"{V1}/tasks",
        query={"instance_id": iid},
        # the caller's inbox: only holders of documents_logistics find the task in it
        check=lambda b: ([t["id"] for t in b["items"]] == [task]) == (persona == "in_role"),
    )


def task_detail(api: ApiClient, persona: str, user: str | None) -> Call:
    task = _prepare(api)
    return Call(
        f"{V1}/tasks/{task}",
        check=lambda b: (b["id"], b["form"]["id"]) == (task, "prepare_documents"),
    )


def claim(api: ApiClient, persona: str, user: str | None) -> Call:
    task = _prepare(api)
    return Call(f"{V1}/tasks/{task}/claim", check=lambda b: b["assignee"] == user)


def unclaim(api: ApiClient, persona: str, user: str | None) -> Call:
    task = _claimed(api)
    return Call(f"{V1}/tasks/{task}/unclaim", check=lambda b: b["assignee"] is None)


def delegate_open(api: ApiClient, persona: str, user: str | None) -> Call:
    task = _prepare(api)
    return Call(
        f"{V1}/tasks/{task}/delegate",
        json={"user": "clerk2"},
        check=lambda b: b["assignee"] == "clerk2",
    )


def delegate_claimed(api: ApiClient, persona: str, user: str | None) -> Call:
    task = _claimed(api)
    return Call(
        f"{V1}/tasks/{task}/delegate",
        json={"user": "clerk2"},
        check=lambda b: b["assignee"] == "clerk2",
    )


def complete(api: ApiClient, persona: str, user: str | None) -> Call:
    task = _prepare(api)
    return Call(
        f"{V1}/tasks/{task}/complete",
        json={"data": {"invoice_number": "INV-AUTHZ"}},  # what the form requires
        check=lambda b: (
            (b["state"], [t["element_id"] for t in b["next_tasks"]])
            == ("completed", ["review_documents"])
        ),
    )


def queue_sizes(api: ApiClient, persona: str, user: str | None) -> Call:
    _prepare(api)  # documents_logistics has an open task

    def visible(body: Any) -> bool:
        if persona in ("auditor", "admin"):  # every role
            return "documents_logistics" in _roles(body)
        roles = USERS[user][0] if user else []
        return _roles(body) == sorted(roles)  # owners and integrations hold none

    return Call(f"{V1}/queues", check=visible)


def message(api: ApiClient, persona: str, user: str | None) -> Call:
    """A payment_collection waiting for payment_received: a message would move it on."""
    key = _key()
    iid = api.start("payment_collection", "cashier", business_key=key)
    api.complete(api.task(iid, "issue_invoice"), "cashier", invoice_amount=1000.0, currency="USD")
    return Call(
        f"{V1}/messages",
        json={
            "name": "payment_received",
            "business_key": key,
            "variables": {"amount_received": 1000.0},
        },
        check=lambda b: (b["delivered_to"], b["kept"]) == ([iid], False),
    )


def element_analytics(api: ApiClient, persona: str, user: str | None) -> Call:
    _review(api)
    return Call(
        f"{V1}/analytics/elements",
        query={"definition": "document_review"},
        check=lambda b: "prepare_documents" in {e["element_id"] for e in b["items"]},
    )


def kpi_figures(api: ApiClient, persona: str, user: str | None) -> Call:
    _review(api)
    return Call(
        f"{V1}/kpis",
        query={"definition": "document_review"},
        check=lambda b: b["workload"]["documents_logistics"]["open"] >= 1,
    )


def behind_a_figure(api: ApiClient, persona: str, user: str | None) -> Call:
    _review(api)
    return Call(
        f"{V1}/kpis/instances",
        query={"measure": "inquiry_response", "definition": "document_review"},
        check=lambda b: b["items"] == [],  # no inquiry in a document review
    )


def behind_a_step(api: ApiClient, persona: str, user: str | None) -> Call:
    iid, _ = _review(api)
    return Call(
        f"{V1}/analytics/elements/prepare_documents/instances",
        check=lambda b: iid in {s["instance_id"] for s in b["items"]},
    )


def audit_search(api: ApiClient, persona: str, user: str | None) -> Call:
    iid, _ = _review(api)
    return Call(
        f"{V1}/audit",
        query={"kind": "instance_started", "limit": 1000},
        check=lambda b: iid in {e["instance_id"] for e in b["items"]},
    )


def audit_export(api: ApiClient, persona: str, user: str | None) -> Call:
    _review(api)
    return Call(f"{V1}/audit/export", query={"format": "csv"})  # a file, not JSON: no check


def xes_export(api: ApiClient, persona: str, user: str | None) -> Call:
    _review(api)
    return Call(f"{V1}/audit/export", query={"format": "xes"})


def scrape(api: ApiClient, persona: str, user: str | None) -> Call:
    return Call("/metrics")  # Prometheus text: no check


# --- the matrix -------------------------------------------------------------------------


# fmt: off
ROWS: list[Row] = [
    # endpoint, arrange, the employee in the role, one outside it
    #   anon  in   out  owner audit admin integration
    Row("GET /api/v1/definitions", catalog, "clerk", "sales",
        (401, 200, 200, 200, 200, 200, 200)),
    # deploying: process owners and admins
    Row("POST /api/v1/definitions", deploy, "clerk", "sales",
        (401, 403, 403, 201, 403, 201, 403)),
    # checking without deploying: the same people as deploying (nothing is stored)
    Row("POST /api/v1/definitions/check", check, "clerk", "sales",
        (401, 403, 403, 200, 403, 200, 403)),
    Row("GET /api/v1/definitions/{key}", versions, "clerk", "sales",
        (401, 200, 200, 200, 200, 200, 200)),
    Row("GET /api/v1/definitions/{key}/xml", xml, "clerk", "sales",
        (401, 200, 200, 200, 200, 200, 200)),
    # a list is 200 for anyone; what it holds is checked (instance_list)
    Row("GET /api/v1/instances", instance_list, "clerk", "cashier",
        (401, 200, 200, 200, 200, 200, 200)),
    # any employee may start (the README puts no role condition on it; the code asks for
    # some role); integrations, owners and admins too (api/auth.starts_instances);
    # auditors only read
    Row("POST /api/v1/instances", start, "clerk", "cashier",
        (401, 201, 201, 201, 403, 201, 201)),
    Row("GET /api/v1/instances/{id}", instance, "clerk", "cashier",
        (401, 200, 403, 200, 200, 200, 403)),
    Row("POST /api/v1/instances/{id}/cancel", cancel, "clerk", "cashier",
        (401, 403, 403, 200, 403, 200, 403)),
    Row("GET /api/v1/instances/{id}/audit", instance_audit, "clerk", "cashier",
        (401, 200, 403, 200, 200, 200, 403)),
    Row("GET /api/v1/instances/{id}/audit/verify", verify, "clerk", "cashier",
        (401, 200, 403, 200, 200, 200, 403)),
    # the caller's inbox: 200 for anyone; only the role's holders find the task (inbox)
    Row("GET /api/v1/tasks", inbox, "clerk", "cashier",
        (401, 200, 200, 200, 200, 200, 200)),
    Row("GET /api/v1/tasks/{id}", task_detail, "clerk", "cashier",
        (401, 200, 403, 200, 200, 200, 403)),
    # working a task needs one of its roles; admins hold none and do not work tasks
    # (engine/tasks._claim checks roles only, no admin flag): 403 for them too
    Row("POST /api/v1/tasks/{id}/claim", claim, "clerk", "cashier",
        (401, 200, 403, 403, 403, 403, 403)),
    # a task claimed by clerk (the one in the role); an admin may take any claim back
    # ("the admin flag decides", engine/tasks.unclaim)
    Row("POST /api/v1/tasks/{id}/unclaim", unclaim, "clerk", "cashier",
        (401, 200, 403, 403, 403, 200, 403)),
    # an open task handed to clerk2: the caller needs one of its roles; an admin may
    # hand any task to someone who holds one (engine/tasks.delegate)
    Row("POST /api/v1/tasks/{id}/delegate", delegate_open, "clerk", "cashier",
        (401, 200, 403, 403, 403, 200, 403)),
    # a task claimed by clerk handed to clerk2: by its assignee, or an admin over them
    Row("POST /api/v1/tasks/{id}/delegate", delegate_claimed, "clerk", "cashier",
        (401, 200, 403, 403, 403, 200, 403),
        variant="claimed"),
    # with the data the form requires, so the allowed cell is 200; admins: 403 as for claim
    Row("POST /api/v1/tasks/{id}/complete", complete, "clerk", "cashier",
        (401, 200, 403, 403, 403, 403, 403)),
    # 200 for anyone; each sees the queues of its own roles, auditors and admins all
    Row("GET /api/v1/queues", queue_sizes, "clerk", "sales",
        (401, 200, 200, 200, 200, 200, 200)),
    # messages come from integrations and admins; cashier works payment_collection but
    # is an employee, not an integration
    Row("POST /api/v1/messages", message, "cashier", "clerk",
        (401, 403, 403, 403, 403, 200, 200)),
    Row("GET /api/v1/audit", audit_search, "clerk", "cashier",
        (401, 403, 403, 403, 200, 200, 403)),
    Row("GET /api/v1/audit/export", audit_export, "clerk", "cashier",
        (401, 403, 403, 403, 200, 200, 403)),
    Row("GET /api/v1/audit/export", xes_export, "clerk", "cashier",
        (401, 403, 403, 403, 200, 200, 403), variant="xes"),
    # what waits where, for a scraper: an integration's token, or an admin's
    Row("GET /metrics", scrape, "clerk", "cashier",
        (401, 403, 403, 403, 403, 200, 200)),
    # where work waits: process owners (their processes), auditors and admins
    Row("GET /api/v1/analytics/elements", element_analytics, "clerk", "cashier",
        (401, 403, 403, 200, 200, 200, 403)),
    Row("GET /api/v1/kpis", kpi_figures, "clerk", "cashier",
        (401, 403, 403, 200, 200, 200, 403)),
    Row("GET /api/v1/kpis/instances", behind_a_figure, "clerk", "cashier",
        (401, 403, 403, 200, 200, 200, 403)),
    Row("GET /api/v1/analytics/elements/{id}/instances", behind_a_step, "clerk", "cashier",
        (401, 403, 403, 200, 200, 200, 403)),
]
# fmt: on


def _cells() -> Iterator[Any]:
    for row in ROWS:
        for persona in PERSONAS:
            marks = []
            if persona in row.bugs:
                marks.append(pytest.mark.xfail(strict=True, reason=row.bugs[persona]))
            yield pytest.param(row, persona, id=f"{row.name}-{persona}", marks=marks)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def api(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
) -> Iterator[ApiClient]:
    """The API with every kind of user and the fixture diagrams deployed, once per
    database for the module (the `deployed` fixture's setup, shared by the cells)."""
    if request.param == "sqlite":
        databases = _sqlite(tmp_path_factory.mktemp("authz"), sqlite_template)
    else:
        databases = _postgres()  # skips when no server answers
    db = next(databases)
    clock = FakeClock()
    client = ApiClient(Tradeflow(db, clock), clock)
    client.deploy(fixture_files())
    yield client
    next(databases, None)  # dispose (and drop the PostgreSQL schema)


def send(api: ApiClient, method: str, call: Call, user: str | None) -> TestResponse:
    kw: dict[str, Any] = {}
    if call.files is not None:
        kw = {"data": multipart(call.files), "content_type": "multipart/form-data"}
    elif call.json is not None:
        kw = {"json": call.json}
    return api.request(method, call.url, user, query_string=call.query, **kw)


@pytest.mark.parametrize(("row", "persona"), list(_cells()))
def test_matrix(api: ApiClient, row: Row, persona: str) -> None:
    user = row.user(persona)
    status = row.status(persona)
    call = row.arrange(api, persona, user)
    if row.method == "POST" and status < 300:  # allowed to change something
        response = send(api, row.method, call, user)
    else:  # refused, or only reading: nothing changes
        with api.unchanged():
            response = send(api, row.method, call, user)
            if status >= 400:
                body = problem(response, status)
                if status == 403:
                    assert body["type"].rsplit(":", 1)[1] in ("forbidden", "not-in-role"), body
                return
    assert response.status_code == status, (response.status_code, response.get_data(True))
    if call.check is not None:
        assert response.mimetype == "application/json", response.mimetype
        body = response.get_json()
        assert call.check(body), body


def _template(rule: str) -> str:
    """/api/v1/tasks/<int:task_id>/claim -> /api/v1/tasks/{id}/claim"""

    def name(match: re.Match[str]) -> str:
        variable = match[1]
        return "{id}" if variable.endswith("_id") else "{" + variable + "}"

    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", name, rule)


def test_every_endpoint_has_a_row(api: ApiClient) -> None:
    """A new endpoint needs its row in ROWS (or, if public by design, in PUBLIC)."""
    served = {
        (method, _template(rule.rule))
        for rule in api.app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")  # Flask adds these to every GET / every rule
        # the web pages sign people in with a session (tests/web/test_pages.py)
        and not rule.endpoint.startswith("web.")
    }
    covered = {(row.method, row.path) for row in ROWS}
    missing = served - covered - PUBLIC.keys()
    assert not missing, f"endpoints without a row in the matrix: {sorted(missing)}"
    stale = (covered | PUBLIC.keys()) - served
    assert not stale, f"rows for endpoints the app does not serve: {sorted(stale)}"
    assert not covered & PUBLIC.keys()


def test_public_endpoints_need_no_token(api: ApiClient) -> None:
    for (method, _), url in PUBLIC.items():
        with api.unchanged():
            response = api.request(method, url)
        assert response.status_code == 200, (url, response.status_code)


# --- revoking with the real CLI -----------------------------------------------------------


def test_users_revoke_stops_a_token_at_once(tmp_path: Path, sqlite_template: Path) -> None:
    """`tradeflow users revoke` in another process; the running API refuses the old token
    on its very next request, and a new token from `users add` works."""
    db_file = tmp_path / "tradeflow.db"
    shutil.copy(sqlite_template, db_file)
    url = f"sqlite:///{db_file}"
    env = {**os.environ, "TRADEFLOW_DATABASE_URL": url}

    def tradeflow(*args: str) -> str:
        result = subprocess.run(
            [str(TRADEFLOW), *args], env=env, cwd=ROOT, text=True, capture_output=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]

    token = tradeflow("users", "add", "temp", "--role", "finance")
    other = tradeflow("users", "add", "stays", "--role", "finance")
    db = Database(url)
    try:
        http = create_app({"TRADEFLOW": Tradeflow(db)}).test_client()

        def get(bearer: str) -> TestResponse:
            return http.get(f"{V1}/queues", headers={"Authorization": f"Bearer {bearer}"})

        assert ok(get(token))["items"] == [
            {"role": "finance", "open": 0, "claimed": 0, "overdue": 0}
        ]
        assert tradeflow("users", "revoke", "temp").startswith("1 token(s) of temp revoked")
        assert "revoked" in problem(get(token), 401)["detail"]
        ok(get(other))  # another user's token is untouched

        fresh = tradeflow("users", "add", "temp")
        assert fresh != token
        assert [q["role"] for q in ok(get(fresh))["items"]] == ["finance"]  # roles kept
        problem(get(token), 401)  # the old one stays revoked
    finally:
        db.dispose()

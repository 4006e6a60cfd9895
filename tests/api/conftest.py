"""Fixtures for the HTTP API: a test client over a real database (SQLite and PostgreSQL),
one user of each kind with a bearer token, and the shipped diagrams deployed through the
API itself.

Helpers here are imported by the test modules (``from tests.api.conftest import ...``).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from api import create_app
from engine.people import Flags, users
from engine.storage import (
    AuditEvent,
    Database,
    Definition,
    Deployment,
    Form,
    HumanTask,
    Instance,
    Message,
    TaskState,
)
from engine.tradeflow import Tradeflow
from tests.conftest import FakeClock
from tests.engine.conftest import fixture_files

V1 = "/api/v1"
PROBLEM = "application/problem+json"

# name -> (roles, flags): one user of each kind the permission rules know
USERS: dict[str, tuple[list[str], Flags]] = {
    "owner": ([], Flags(process_owner=True)),
    "admin": ([], Flags(admin=True)),
    "auditor": ([], Flags(auditor=True)),
    "bank": ([], Flags(integration=True)),
    "clerk": (["documents_logistics"], Flags()),
    "clerk2": (["documents_logistics"], Flags()),
    "checker": (["risk_compliance"], Flags()),
    "allrounder": (["documents_logistics", "risk_compliance"], Flags()),  # maker-checker
    "cashier": (["finance"], Flags()),
    "boss": (["manager"], Flags()),
    "sales": (["order_execution"], Flags()),
}


def multipart(files: list[tuple[str, bytes]]) -> dict[str, Any]:
    """Files as a multipart form (field names f0, f1, ...)."""
    return {f"f{n}": (io.BytesIO(content), name) for n, (name, content) in enumerate(files)}


def problem(response: TestResponse, status: int, slug: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 problem+json answer with ``status``; return its body."""
    assert response.status_code == status, (response.status_code, response.get_data(True))
    assert response.mimetype == PROBLEM, response.mimetype
    body: dict[str, Any] = response.get_json(force=True)
    assert {"type", "title", "status", "detail"} <= body.keys(), body
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    if slug is not None:
        assert body["type"] == f"urn:tradeflow:problem:{slug}", body
    return body


def ok(response: TestResponse, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.get_data(True))
    assert response.mimetype == "application/json", response.mimetype
    return response.get_json()


def snapshot(flow: Tradeflow) -> dict[str, Any]:
    """What a refused request must leave exactly as it was."""
    with flow.db.reading() as session:
        return {
            "instances": session.execute(
                select(
                    Instance.id, Instance.status, Instance.revision, Instance.audit_seq
                ).order_by(Instance.id)
            ).all(),
            "tasks": session.execute(
                select(HumanTask.id, HumanTask.state, HumanTask.assignee).order_by(HumanTask.id)
            ).all(),
            "audit": session.execute(
                select(AuditEvent.stream, func.count(), func.max(AuditEvent.seq))
                .group_by(AuditEvent.stream)
                .order_by(AuditEvent.stream)
            ).all(),
            "messages": session.execute(
                select(Message.id, Message.status).order_by(Message.id)
            ).all(),
            "definitions": session.scalar(select(func.count()).select_from(Definition)),
            "deployments": session.scalar(select(func.count()).select_from(Deployment)),
            "forms": session.scalar(select(func.count()).select_from(Form)),
        }


class ApiClient:
    """The Flask test client plus the engine under it, with one token per user."""

    def __init__(self, flow: Tradeflow, clock: FakeClock) -> None:
        self.flow = flow
        self.clock = clock
        with flow.db.transaction() as session:  # one commit for them all
            self.tokens = {
                name: users.add_user(session, name, roles, flags, clock.now())[1]
                for name, (roles, flags) in USERS.items()
            }
        self.app = create_app({"TRADEFLOW": flow})
        self.http: FlaskClient = self.app.test_client()

    def headers(self, user: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}

    def request(self, method: str, url: str, user: str | None = None, **kw: Any) -> TestResponse:
        headers = {**self.headers(user), **kw.pop("headers", {})}
        return self.http.open(url, method=method, headers=headers, **kw)

    def get(self, url: str, user: str | None = None, **kw: Any) -> TestResponse:
        return self.request("GET", url, user, **kw)

    def post(self, url: str, user: str | None = None, **kw: Any) -> TestResponse:
        return self.request("POST", url, user, **kw)

    # shortcuts for arranging a test (each asserts success)
    def deploy(
        self, files: list[tuple[str, bytes]], user: str = "owner", status: int = 201
    ) -> dict[str, Any]:
        response = self.post(
            f"{V1}/definitions", user, data=multipart(files), content_type="multipart/form-data"
        )
        return dict(ok(response, status))

    def start(self, definition: str, user: str, **body: Any) -> int:
        response = self.post(f"{V1}/instances", user, json={"definition": definition, **body})
        return int(ok(response, 201)["id"])

    def task(self, instance_id: int, element_id: str) -> int:
        """The id of the instance's one open task at ``element_id``."""
        found = [
            t.id
            for t in self.flow.tasks_of(instance_id)
            if t.element_id == element_id and t.state == TaskState.OPEN
        ]
        assert len(found) == 1, f"expected one open {element_id}, got {found}"
        return found[0]

    def complete(self, task_id: int, user: str, **data: Any) -> dict[str, Any]:
        response = self.post(f"{V1}/tasks/{task_id}/complete", user, json={"data": data})
        return dict(ok(response))

    def open_elements(self, instance_id: int) -> list[str]:
        return sorted(
            t.element_id for t in self.flow.tasks_of(instance_id) if t.state == TaskState.OPEN
        )

    def kinds(self, instance_id: int) -> list[str]:
        return [e.kind for e in self.flow.history(instance_id)]

    @contextmanager
    def unchanged(self) -> Iterator[None]:
        """The block must leave instances, tasks, audit, messages and definitions as they
        were."""
        before = snapshot(self.flow)
        yield
        assert snapshot(self.flow) == before, "a refused request changed something"


@pytest.fixture
def client(db: Database, clock: FakeClock) -> ApiClient:
    """The API over an empty database with every kind of user; nothing deployed."""
    return ApiClient(Tradeflow(db, clock), clock)


@pytest.fixture
def deployed(client: ApiClient) -> ApiClient:
    """The API with the shipped diagrams, decisions and forms deployed through it."""
    client.deploy(fixture_files())
    return client


def _user_task(element_id: str, name: str, **properties: str) -> str:
    props = "".join(f'<camunda:property name="{k}" value="{v}" />' for k, v in properties.items())
    extension = (
        f"<bpmn:extensionElements><camunda:properties>{props}</camunda:properties>"
        "</bpmn:extensionElements>"
        if props
        else ""
    )
    return (
        f'<bpmn:userTask id="{element_id}" name="{name}" camunda:candidateGroups="finance">'
        f"{extension}</bpmn:userTask>"
    )


def _triage() -> bytes:
    """Three finance tasks at once: urgent (priority 90), normal (50) and routine
    (priority 10, due an hour after it opens: sla PT1H)."""
    tasks = [
        _user_task("urgent", "Urgent check", priority="90"),
        _user_task("normal", "Normal check"),
        _user_task("routine", "Routine check", priority="10", sla="PT1H"),
    ]
    flows = ['<bpmn:sequenceFlow id="to_fork" sourceRef="start" targetRef="fork" />']
    for n, element in enumerate(("urgent", "normal", "routine")):
        flows.append(f'<bpmn:sequenceFlow id="f{n}" sourceRef="fork" targetRef="{element}" />')
        flows.append(f'<bpmn:sequenceFlow id="e{n}" sourceRef="{element}" targetRef="end{n}" />')
    ends = "".join(f'<bpmn:endEvent id="end{n}" />' for n in range(3))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="triage_definitions" '
        'targetNamespace="http://bpmn.io/schema/bpmn">'
        '<bpmn:process id="triage" name="Triage" isExecutable="true">'
        '<bpmn:startEvent id="start" /><bpmn:parallelGateway id="fork" />'
        + "".join(tasks)
        + ends
        + "".join(flows)
        + "</bpmn:process></bpmn:definitions>"
    ).encode()


TRIAGE = ("triage.bpmn", _triage())

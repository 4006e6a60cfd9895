"""Crashes: `kill -9` the server in the middle of a stream of task completions, restart
it, and check that nothing acknowledged was lost and nothing was half-applied."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from SpiffWorkflow.util.task import TaskState as SpiffState
from sqlalchemy import select

from engine.queues import ROW
from engine.storage import AuditEvent, Database, HumanTask, Instance, InstanceStatus, TaskState
from engine.tradeflow import Tradeflow
from tests.conftest import ROOT, postgres_database
from tests.engine.conftest import fixture_files
from tests.test_e2e import TRADEFLOW, _free_port

CLIENTS = 4


class Api:
    def __init__(self, port: int, token: dict[str, str]) -> None:
        self.base = f"http://127.0.0.1:{port}/api/v1"
        self.token = token

    def call(self, method: str, path: str, user: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token[user]}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)


def _serve(url: str, port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`tradeflow serve` of two workers on ``url`` (``env``: settings beside it)."""
    return subprocess.Popen(
        [TRADEFLOW, "serve", "--port", str(port), "--workers", "2"],
        env={**os.environ, "TRADEFLOW_DATABASE_URL": url, **(env or {})},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _up(port: int) -> None:
    for _ in range(150):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError("tradeflow serve did not come up")


def _drive(api: Api, acked: list[int], stop: threading.Event, errors: list[str]) -> None:
    """Complete document reviews one step after another until the server dies; record
    every completion the server acknowledged with a 2xx."""
    while not stop.is_set():
        try:
            status, body = api.call(
                "POST", "/instances", "clerk", {"definition": "document_review"}
            )
            if status != 201:
                errors.append(f"start: {status} {body}")
                return
            tasks = [(t["id"], t["element_id"]) for t in body["tasks"]]
            rounds = 0
            while tasks and not stop.is_set():
                task_id, element = tasks[0]
                if element == "prepare_documents":
                    user, data = "clerk", {"invoice_number": f"INV-{task_id}"}
                else:
                    user, data = "checker", {"documents_ok": rounds >= 2}
                    rounds += 1
                status, body = api.call("POST", f"/tasks/{task_id}/complete", user, {"data": data})
                if status != 200:
                    errors.append(f"complete {task_id}: {status} {body}")
                    return
                acked.append(task_id)
                tasks = [(t["id"], t["element_id"]) for t in body["next_tasks"]]
        except (urllib.error.URLError, http.client.HTTPException, OSError):
            return  # the server is gone (a reply cut short counts as not acknowledged)


def _consistent(flow: Tradeflow) -> None:
    """Rows, workflow state and audit trail of every instance agree; every chain holds."""
    with flow.db.reading() as session:
        instances = session.scalars(select(Instance)).all()
        for instance in instances:
            stream = f"instance:{instance.id}"
            assert flow.verify(stream).ok, stream
            tasks = session.scalars(
                select(HumanTask).where(HumanTask.instance_id == instance.id)
            ).all()
            open_rows = {t.id for t in tasks if t.state == TaskState.OPEN}
            if instance.status == InstanceStatus.RUNNING:
                workflow = flow.runtime.load(session, instance)
                ready = {
                    t.internal_data.get(ROW)
                    for t in workflow.get_tasks()
                    if t.task_spec.manual and t.state == SpiffState.READY
                }
                assert open_rows == ready, (instance.id, open_rows, ready)
            else:
                assert open_rows == set(), instance.id
            completed = {t.id for t in tasks if t.state == TaskState.COMPLETED}
            audited = [
                e.data["task_id"]
                for e in session.scalars(
                    select(AuditEvent).where(
                        AuditEvent.stream == stream, AuditEvent.kind == "task_completed"
                    )
                )
            ]
            assert sorted(audited) == sorted(completed), instance.id  # once each, no more


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/crash.db"
    else:
        with postgres_database("crash") as url:
            yield url


def test_every_acknowledged_completion_survives_a_kill_9(store_url: str) -> None:
    url = store_url
    flow = Tradeflow(Database(url))
    flow.upgrade()
    flow.deploy(fixture_files(), actor="owner")
    token = {name: flow.add_user(name, [role])[1] for name, role in
             (("clerk", "documents_logistics"), ("checker", "risk_compliance"))}  # fmt: skip
    port = _free_port()
    server = _serve(url, port)
    _up(port)
    api = Api(port, token)
    acked: list[int] = []
    errors: list[str] = []
    stop = threading.Event()
    clients = [
        threading.Thread(target=_drive, args=(api, acked, stop, errors)) for _ in range(CLIENTS)
    ]
    for client in clients:
        client.start()
    time.sleep(2.5)  # mid-stream
    os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=30)
    stop.set()
    for client in clients:
        client.join(timeout=30)
    assert errors == []
    assert len(acked) > 50, "the stream was too short to mean anything"

    server = _serve(url, port)  # restart on the same database
    try:
        _up(port)
        with flow.db.reading() as session:
            done = set(
                session.scalars(select(HumanTask.id).where(HumanTask.state == TaskState.COMPLETED))
            )
        assert set(acked) <= done  # every 2xx is there
        _consistent(flow)
        # and the service goes on where it stopped
        status, body = api.call("POST", "/instances", "clerk", {"definition": "document_review"})
        assert status == 201, body
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        flow.db.dispose()


@pytest.mark.parametrize("attempts", [2, 6])
def test_racing_completions_of_one_task_succeed_once(tmp_path: Path, attempts: int) -> None:
    url = f"sqlite:///{tmp_path}/race.db"
    flow = Tradeflow(Database(url))
    flow.upgrade()
    flow.deploy(fixture_files(), actor="owner")
    _, token = flow.add_user("clerk", ["documents_logistics"])
    port = _free_port()
    server = _serve(url, port)
    try:
        _up(port)
        api = Api(port, {"clerk": token})
        _, body = api.call("POST", "/instances", "clerk", {"definition": "document_review"})
        task_id = body["tasks"][0]["id"]
        barrier = threading.Barrier(attempts)
        statuses: list[int] = []

        def complete() -> None:
            barrier.wait()
            data = {"data": {"invoice_number": "INV-1"}}
            statuses.append(api.call("POST", f"/tasks/{task_id}/complete", "clerk", data)[0])

        threads = [threading.Thread(target=complete) for _ in range(attempts)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [200] + [409] * (attempts - 1)
        completed = [e for e in flow.history(body["id"]) if e.kind == "task_completed"]
        assert len(completed) == 1
        _consistent(flow)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        flow.db.dispose()

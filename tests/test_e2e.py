"""End to end: a real `tradeflow serve` (gunicorn) on a real database, over real HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import command
from tests.command import TRADEFLOW
from tests.conftest import PG_URL, ROOT, postgres_unavailable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    def __init__(self, url: str, env: dict[str, str]) -> None:
        self.url, self.env = url, env

    def cli(self, *args: str) -> str:
        done = command.tradeflow(*args, env=self.env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def token(self, name: str, *flags: str) -> str:
        return self.cli("users", "add", name, *flags).strip().splitlines()[-1]

    def call(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.headers["Content-Type"], json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, error.headers["Content-Type"], json.load(error)


def _wait_until_up(service: Service, path: str) -> None:
    """Until ``GET path`` answers 200 (the server is accepting requests)."""
    for _ in range(100):
        try:
            if service.call("GET", path)[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError("tradeflow serve did not come up")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/e2e.db"
        cleanup = None
    else:
        reason = postgres_unavailable()
        if reason:
            pytest.skip(reason)
        import psycopg

        name = f"tf_e2e_{os.getpid()}_{_free_port()}"
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
        cleanup = name
    env = {**os.environ, "TRADEFLOW_DATABASE_URL": url}
    port = _free_port()
    server = subprocess.Popen(
        [TRADEFLOW, "serve", "--port", str(port), "--workers", "2", "--threads", "2"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    service = Service(f"http://127.0.0.1:{port}", env)
    try:
        _wait_until_up(service, "/api/v1/health")
        yield service
    finally:
        server.terminate()
        server.wait(timeout=30)
        if cleanup:
            import psycopg

            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE {cleanup} WITH (FORCE)")


def test_a_document_review_over_http(service: Service) -> None:
    service.cli(
        "deploy",
        *[str(p) for p in sorted((ROOT / "bpmn").iterdir())],
        *[str(p) for p in sorted((ROOT / "forms").glob("*.form"))],
    )
    clerk = service.token("clerk", "--role", "documents_logistics")
    checker = service.token("checker", "--role", "risk_compliance")
    auditor = service.token("audrey", "--auditor")

    status, kind, _ = service.call("GET", "/api/v1/tasks")
    assert (status, kind) == (401, "application/problem+json")

    status, _, started = service.call(
        "POST",
        "/api/v1/instances",
        clerk,
        {"definition": "document_review", "business_key": "SO-9"},
    )
    assert status == 201 and started["status"] == "running"
    iid = started["id"]
    _, _, inbox = service.call("GET", f"/api/v1/tasks?instance_id={iid}", clerk)
    [prepare] = inbox["items"]
    assert (prepare["element_id"], prepare["business_key"]) == ("prepare_documents", "SO-9")

    status, kind, refused = service.call(
        "POST", f"/api/v1/tasks/{prepare['id']}/complete", clerk, {"data": {}}
    )
    assert (status, kind) == (422, "application/problem+json")
    assert refused["errors"] == [
        {"field": "invoice_number", "message": "Missing data for required field."}
    ]

    status, _, done = service.call(
        "POST",
        f"/api/v1/tasks/{prepare['id']}/complete",
        clerk,
        {"data": {"invoice_number": "INV-9"}},
    )
    assert (status, done["state"]) == (200, "completed")
    status, _, _ = service.call(
        "POST",
        f"/api/v1/tasks/{prepare['id']}/complete",
        clerk,
        {"data": {"invoice_number": "INV-9"}},
    )
    assert status == 409

    _, _, inbox = service.call("GET", "/api/v1/tasks", checker)
    [review] = inbox["items"]
    status, _, _ = service.call(
        "POST", f"/api/v1/tasks/{review['id']}/complete", checker, {"data": {"documents_ok": True}}
    )
    assert status == 200
    _, _, instance = service.call("GET", f"/api/v1/instances/{iid}", auditor)
    assert instance["status"] == "completed"
    assert instance["variables"]["invoice_number"] == "INV-9"
    _, _, verified = service.call("GET", f"/api/v1/instances/{iid}/audit/verify", auditor)
    assert verified == {
        "valid": True,
        "first_bad_seq": None,
        "reason": None,
        "events": 8,
        "recorded_seq": 8,
        "problems": [],
        "checked": verified["checked"],
    }


@pytest.mark.parametrize("flag", ["--access-log", None])
def test_the_access_log_is_written_when_asked_for(flag: str | None, tmp_path: Path) -> None:
    env = {**os.environ, "TRADEFLOW_DATABASE_URL": f"sqlite:///{tmp_path}/log.db"}
    port = _free_port()
    command = [TRADEFLOW, "serve", "--port", str(port), "--workers", "1", "--no-scheduler"]
    server = subprocess.Popen(
        [*command, *([flag] if flag else [])],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        service = Service(f"http://127.0.0.1:{port}", env)
        _wait_until_up(service, "/api/v1/health?probe=1")
        # the line is written once the answer has left: one more request through the one
        # thread, and the probe's line is out before the stop
        assert service.call("GET", "/api/v1/health")[0] == 200
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    logged = [line for line in output.splitlines() if "GET /api/v1/health?probe=1" in line]
    assert (len(logged) == 1) if flag else (logged == []), output

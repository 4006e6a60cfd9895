"""The database not answering now is 503 with Retry-After (problem+json), within the
lock wait, never a hang or a 500; the health answer names it; the log gets one line per
kind of failure a minute (api/errors.py, api/resources/health.py, cli/health.py)."""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from api import create_app
from api.resources import health
from cli.health import serve_health
from engine.storage import Database
from engine.tradeflow import Tradeflow
from tests.api.conftest import V1, ApiClient, ok, problem
from tests.engine.storage.test_faults import SHORT, held_writer, with_waits

DOWN = "postgresql://postgres@127.0.0.1:1/none"


def _short(deployed: ApiClient) -> ApiClient:
    """The same store and users, through an engine whose waits are short."""
    client = ApiClient.__new__(ApiClient)
    client.flow = Tradeflow(with_waits(deployed.flow.db, SHORT), deployed.clock)
    client.clock, client.tokens = deployed.clock, deployed.tokens
    client.app = create_app({"TRADEFLOW": client.flow})
    client.http = client.app.test_client()
    return client


def test_a_held_lock_answers_503_with_retry_after_and_changes_nothing(
    deployed: ApiClient,
) -> None:
    """Another process holds the lock a completion needs (SQLite: the writer lock, as a
    stopped process leaves it; PostgreSQL: the instance table): the completion waits
    the lock wait, then answers 503 and changes nothing; once the lock is let go, the
    same request succeeds."""
    iid = deployed.start("payment_collection", "cashier", business_key="SO-701")
    task = deployed.task(iid, "issue_invoice")
    body = {"data": {"invoice_amount": 10.0, "currency": "USD"}}
    short = _short(deployed)
    with deployed.unchanged(), held_writer(deployed.flow.db):
        began = time.monotonic()
        response = short.post(f"{V1}/tasks/{task}/complete", "cashier", json=body)
        waited = time.monotonic() - began
    found = problem(response, 503, "database-busy")
    assert response.headers["Retry-After"] == "1"
    assert found["detail"] == "the database is busy; try again shortly"
    assert waited < 3
    ok(short.post(f"{V1}/tasks/{task}/complete", "cashier", json=body))
    short.flow.db.dispose()


def test_a_database_that_is_down_answers_503_and_is_logged_once(
    deployed: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    down = ApiClient.__new__(ApiClient)
    down.flow = Tradeflow(Database(DOWN), deployed.clock)
    down.tokens, down.clock = deployed.tokens, deployed.clock
    down.app = create_app({"TRADEFLOW": down.flow})
    down.http = down.app.test_client()
    caplog.set_level(logging.ERROR)
    for _ in range(30):
        response = down.get(f"{V1}/tasks", "cashier")
        problem(response, 503, "database-down")
        assert response.headers["Retry-After"] == "5"
    lines = [r for r in caplog.records if r.name == "tradeflow.api"]
    assert len(lines) == 1 and "database down" in lines[0].getMessage()
    assert lines[0].exc_info is None  # no traceback for a database that is away
    health = problem(down.get(f"{V1}/health"), 503, "unhealthy")
    assert health["checks"] == {
        "database": {"status": "down", "detail": "the database is unavailable; try again later"}
    }
    assert health["detail"] == "database: the database is unavailable; try again later"
    assert ok(deployed.get(f"{V1}/health")) == {
        "status": "ok",
        "checks": {"database": {"status": "ok", "detail": None}},
    }


def test_an_unexpected_error_is_500_and_logged_once_a_minute(
    deployed: ApiClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kw: Any) -> Any:
        raise KeyError("a bug")

    iid = deployed.start("payment_collection", "cashier", business_key="SO-702")
    monkeypatch.setattr(Tradeflow, "variables", broken)
    caplog.set_level(logging.ERROR)
    for _ in range(5):
        found = problem(deployed.get(f"{V1}/instances/{iid}", "cashier"), 500)
        assert found["detail"] == "internal error"  # nothing of the bug is told
    lines = [r for r in caplog.records if r.name == "tradeflow.api"]
    assert len(lines) == 1 and lines[0].exc_info is not None  # its traceback, once
    assert "KeyError on GET /api/v1/instances/<int(max=2147483647):instance_id>" in (
        lines[0].getMessage()
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_the_health_thread_answers_for_itself(db: Database) -> None:
    """Its own thread and port: it answers while the app is nowhere near, and says
    which dependency is down."""
    port = _free_port()
    server = serve_health(db, "127.0.0.1", port)
    gone = serve_health(Database(DOWN), "127.0.0.1", _free_port())
    try:
        assert _get(f"http://127.0.0.1:{port}/health") == (
            200,
            {"status": "ok", "checks": {"database": {"status": "ok", "detail": None}}},
        )
        assert _get(f"http://127.0.0.1:{port}/elsewhere")[0] == 404
        status, body = _get(f"http://127.0.0.1:{gone.server_address[1]}/health")
        assert (status, body["type"]) == (503, "urn:tradeflow:problem:unhealthy")
        assert body["checks"]["database"]["status"] == "down"
    finally:
        server.shutdown()
        gone.shutdown()


def test_health_answers_within_its_bound_and_probes_once_a_second(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database that takes the connection and never answers: the health answer still
    comes within about 2 s (503, saying so). A flood of health checks probes the
    database once a second, not once per check."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the handshake completes; nothing is ever said
    try:
        hung = Database(f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/none")
        began = time.monotonic()
        body, status = health.check(hung)
        assert time.monotonic() - began < 3.5
        assert (status, body["checks"]["database"]["status"]) == (503, "down")
        assert "did not answer within 2 s" in body["detail"]
    finally:
        silent.close()
    probes: list[int] = []
    real = Database.probe

    def counted(self: Database, seconds: float = 2.0) -> None:
        probes.append(1)
        real(self, seconds)

    monkeypatch.setattr(Database, "probe", counted)
    answers = [health.check(db) for _ in range(50)]
    assert {status for _, status in answers} == {200} and len(probes) == 1
    time.sleep(health.REUSE_SECONDS)
    health.check(db)
    assert len(probes) == 2

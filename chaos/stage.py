"""The chaos suite's stage: `tradeflow serve` on a PostgreSQL database of its own, the
clients that work through a fault (``work_through``), and the checks after each
(``checked``): every acknowledged completion is there once, task rows match the
workflows, every chain verifies, and the service answers.

Clients retry a 503 after its Retry-After, as a client should; any other 5xx, a hang
(a request past 15 s) or a broken invariant fails the fault's run. Each run prints its
figures (requests, 2xx, 503s, the slowest answer) for docs/faults.md.
"""

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
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import select

from engine.people.users import Flags
from engine.storage import Database, HumanTask, TaskState
from engine.tradeflow import Tradeflow
from tests.conftest import postgres_database
from tests.engine.conftest import fixture_files
from tests.test_crash import _consistent, _serve, _up
from tests.test_e2e import _free_port

CLIENTS = 4
CHAOS = "tradeflow-chaos"  # the suite's own connections, spared by its faults
WORK_SECONDS = 10.0
SLOWEST = 15.0  # seconds: a request slower than this is a hang
# short waits, so a fault shows within the run: a stopped holder's transaction ends in 3 s
WAITS = {
    "TRADEFLOW_LOCK_TIMEOUT": "2",
    "TRADEFLOW_STATEMENT_TIMEOUT": "10",
    "TRADEFLOW_IDLE_TRANSACTION_TIMEOUT": "3",
}


@dataclass
class Figures:
    fault: str
    statuses: Counter[int] = field(default_factory=Counter)
    slowest: float = 0.0
    acked: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, status: int, seconds: float) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.slowest = max(self.slowest, seconds)

    def line(self) -> str:
        total = sum(self.statuses.values())
        ok = sum(n for s, n in self.statuses.items() if s < 300)
        return (
            f"{self.fault}: {total} requests, {ok} 2xx, {self.statuses[503]} 503, "
            f"other {dict((s, n) for s, n in self.statuses.items() if s >= 300 and s != 503)}, "
            f"slowest {self.slowest:.2f} s, {len(self.acked)} completions acknowledged"
        )


class Api:
    def __init__(self, port: int, tokens: dict[str, str], figures: Figures) -> None:
        self.base = f"http://127.0.0.1:{port}/api/v1"
        self.tokens = tokens
        self.figures = figures

    def call(
        self, method: str, path: str, user: str, body: Any = None, key: str | None = None
    ) -> tuple[int, Any]:
        """One request, a 503 retried after its Retry-After (up to 10 times)."""
        for _ in range(10):
            data = json.dumps(body).encode() if body is not None else None
            request = urllib.request.Request(self.base + path, data=data, method=method)
            request.add_header("Authorization", f"Bearer {self.tokens[user]}")
            request.add_header("Content-Type", "application/json")
            if key is not None:
                request.add_header("Idempotency-Key", key)
            began = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=SLOWEST) as response:
                    status, answer, retry = response.status, json.load(response), None
            except urllib.error.HTTPError as error:
                status, answer = error.code, json.load(error)
                retry = error.headers.get("Retry-After")
            self.figures.record(status, time.monotonic() - began)
            if status != 503:
                return status, answer
            if retry is None:
                self.figures.problems.append(f"503 without Retry-After: {answer}")
            time.sleep(min(float(retry or 1), 2.0))
        return status, answer


def drive(api: Api, stop: threading.Event) -> None:
    """Document reviews, one step after another, until stopped; every completion
    answered 2xx is recorded. A completion is sent under a key, so one whose answer was
    lost can be sent again safely."""
    figures = api.figures
    while not stop.is_set():
        try:
            status, body = api.call(
                "POST", "/instances", "clerk", {"definition": "document_review"}
            )
            if status != 201:
                if status >= 500:
                    figures.problems.append(f"start: {status} {body}")
                continue
            tasks = [(t["id"], t["element_id"]) for t in body["tasks"]]
            rounds = 0
            while tasks and not stop.is_set():
                task_id, element = tasks[0]
                if element == "prepare_documents":
                    user, data = "clerk", {"invoice_number": f"INV-{task_id}"}
                else:
                    user, data = "checker", {"documents_ok": rounds >= 1}
                    rounds += 1
                key = f"complete-{task_id}"
                status, body = api.call(
                    "POST", f"/tasks/{task_id}/complete", user, {"data": data}, key
                )
                if status != 200:
                    if status >= 500:
                        figures.problems.append(f"complete {task_id}: {status} {body}")
                    break
                with figures.lock:
                    figures.acked.append(task_id)
                tasks = [(t["id"], t["element_id"]) for t in body["next_tasks"]]
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            figures.problems.append(f"connection: {exc}")
            time.sleep(0.2)


@dataclass
class Stage:
    url: str
    flow: Tradeflow
    tokens: dict[str, str]
    servers: list[tuple[int, subprocess.Popen[bytes]]]

    def backends(self, admin: psycopg.Connection[Any]) -> list[int]:
        """The server processes' PostgreSQL backends (not ``admin``'s, nor this
        process's own pool)."""
        name = self.url.rsplit("/", 1)[1]
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
            " AND application_name <> %s",
            (name, CHAOS),
        ).fetchall()
        return [pid for (pid,) in rows]


@contextmanager
def staged(
    servers: int = 1,
    database: AbstractContextManager[str] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Stage]:
    """``servers`` of ``tradeflow serve`` on ``database`` (default: one of its own on
    the shared server), with ``env`` beside the short waits."""
    with database or postgres_database("chaos") as url:
        flow = Tradeflow(Database(url + f"?application_name={CHAOS}"))
        flow.upgrade()
        flow.deploy(fixture_files(), actor="owner")
        tokens = {
            name: flow.add_user(name, roles, flags)[1]
            for name, roles, flags in (
                ("clerk", ["documents_logistics"], None),
                ("checker", ["risk_compliance"], None),
                ("cashier", ["finance"], None),
                ("bank", [], Flags(integration=True)),
            )
        }
        running = [
            (port, _serve(url, port, {**WAITS, **(env or {})}))
            for port in (_free_port() for _ in range(servers))
        ]
        try:
            for port, _ in running:
                _up(port)
            yield Stage(url, flow, tokens, running)
        finally:
            for _, server in running:
                with resumed(server):
                    os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=30)
            flow.db.dispose()


@contextmanager
def resumed(server: subprocess.Popen[bytes]) -> Iterator[None]:
    os.killpg(server.pid, signal.SIGCONT)  # a stopped server can't hear SIGTERM
    yield


def work_through(stage: Stage, fault: str, cause: Callable[[Stage], None], port: int) -> Figures:
    """Clients work on ``port`` for WORK_SECONDS while ``cause`` runs beside them; then
    the checks. The figures, printed."""
    figures = Figures(fault)
    api = Api(port, stage.tokens, figures)
    stop = threading.Event()
    clients = [threading.Thread(target=drive, args=(api, stop)) for _ in range(CLIENTS)]
    for client in clients:
        client.start()
    time.sleep(1.0)  # work under way
    cause(stage)
    time.sleep(1.0)
    stop.set()
    for client in clients:
        client.join(timeout=60)
    assert not any(c.is_alive() for c in clients), "a client hung"
    checked(stage, figures, api)
    print(figures.line())
    return figures


def checked(stage: Stage, figures: Figures, api: Api) -> None:
    assert figures.problems == [], figures.problems[:5]
    assert figures.slowest < SLOWEST
    assert not [s for s in figures.statuses if s >= 500 and s != 503], figures.statuses
    assert len(figures.acked) > 20, "too little work to mean anything"
    stage.flow.db.engine.dispose()  # the suite's own pool may hold sessions a fault ended
    with stage.flow.db.reading() as session:
        done = set(
            session.scalars(select(HumanTask.id).where(HumanTask.state == TaskState.COMPLETED))
        )
    assert set(figures.acked) <= done  # every 2xx is there
    assert len(figures.acked) == len(set(figures.acked))  # and once
    _consistent(stage.flow)
    status, body = api.call("POST", "/instances", "clerk", {"definition": "document_review"})
    assert status == 201, body  # the service answers

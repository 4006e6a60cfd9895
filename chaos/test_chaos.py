"""The chaos suite (`make chaos`, outside `make test`): each fault of docs/faults.md,
caused for real against `tradeflow serve` on PostgreSQL while clients work, then the
same checks after each: every acknowledged completion is there once, task rows match
the workflows, every chain verifies, and the service answers.

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
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select

from engine.people.users import Flags
from engine.storage import AuditEvent, Database, HumanTask, TaskState
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


def _drive(api: Api, stop: threading.Event) -> None:
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
def _stage(servers: int = 1) -> Iterator[Stage]:
    with postgres_database("chaos") as url:
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
            (port, _serve(url, port, WAITS)) for port in (_free_port() for _ in range(servers))
        ]
        try:
            for port, _ in running:
                _up(port)
            yield Stage(url, flow, tokens, running)
        finally:
            for _, server in running:
                with _resumed(server):
                    os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=30)
            flow.db.dispose()


@contextmanager
def _resumed(server: subprocess.Popen[bytes]) -> Iterator[None]:
    os.killpg(server.pid, signal.SIGCONT)  # a stopped server can't hear SIGTERM
    yield


def _work_through(stage: Stage, fault: str, cause: Callable[[Stage], None], port: int) -> Figures:
    """Clients work on ``port`` for WORK_SECONDS while ``cause`` runs beside them; then
    the checks. The figures, printed."""
    figures = Figures(fault)
    api = Api(port, stage.tokens, figures)
    stop = threading.Event()
    clients = [threading.Thread(target=_drive, args=(api, stop)) for _ in range(CLIENTS)]
    for client in clients:
        client.start()
    time.sleep(1.0)  # work under way
    cause(stage)
    time.sleep(1.0)
    stop.set()
    for client in clients:
        client.join(timeout=60)
    assert not any(c.is_alive() for c in clients), "a client hung"
    _checked(stage, figures, api)
    print(figures.line())
    return figures


def _checked(stage: Stage, figures: Figures, api: Api) -> None:
    assert figures.problems == [], figures.problems[:5]
    assert figures.slowest < SLOWEST
    assert not [s for s in figures.statuses if s >= 500 and s != 503], figures.statuses
    assert len(figures.acked) > 20, "too little work to mean anything"
    with stage.flow.db.reading() as session:
        done = set(
            session.scalars(select(HumanTask.id).where(HumanTask.state == TaskState.COMPLETED))
        )
    assert set(figures.acked) <= done  # every 2xx is there
    assert len(figures.acked) == len(set(figures.acked))  # and once
    _consistent(stage.flow)
    status, body = api.call("POST", "/instances", "clerk", {"definition": "document_review"})
    assert status == 201, body  # the service answers


def test_a_lock_held_elsewhere(capsys: pytest.CaptureFixture[str]) -> None:
    """An operator's transaction holds the instance table for 8 s."""

    def hold(stage: Stage) -> None:
        with psycopg.connect(stage.url) as conn:
            conn.execute("LOCK TABLE instance IN ACCESS EXCLUSIVE MODE")
            time.sleep(8)

    with _stage() as stage:
        figures = _work_through(stage, "held lock", hold, stage.servers[0][0])
    assert figures.statuses[503] > 0  # the fault was met, and answered 503


def test_statements_cancelled(capsys: pytest.CaptureFixture[str]) -> None:
    """A DBA cancels every running statement of the service, every 50 ms for 8 s."""

    def cancel(stage: Stage) -> None:
        with psycopg.connect(stage.url, autocommit=True, application_name=CHAOS) as admin:
            until = time.monotonic() + 8
            while time.monotonic() < until:
                for pid in stage.backends(admin):
                    admin.execute("SELECT pg_cancel_backend(%s)", (pid,))
                time.sleep(0.05)

    with _stage() as stage:
        figures = _work_through(stage, "cancelled statements", cancel, stage.servers[0][0])
    assert figures.statuses[503] > 0  # the fault was met, and answered 503


def test_connections_terminated(capsys: pytest.CaptureFixture[str]) -> None:
    """Every connection of the service ended, as a database restart ends them: 4 times,
    2 s apart."""

    def terminate(stage: Stage) -> None:
        with psycopg.connect(stage.url, autocommit=True, application_name=CHAOS) as admin:
            for _ in range(4):
                for pid in stage.backends(admin):
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                time.sleep(2)

    with _stage() as stage:
        figures = _work_through(stage, "terminated connections", terminate, stage.servers[0][0])
    assert figures.statuses[503] > 0


def test_a_stopped_process(capsys: pytest.CaptureFixture[str]) -> None:
    """One of two servers stopped (SIGSTOP) for 8 s while clients use the other: the
    other goes on. (The stopped one only sweeps timers here, so it seldom holds a
    transaction as it stops; that a stopped holder's transaction is ended by the idle
    limit is shown by tests/engine/storage/test_faults.py.)"""

    def stop(stage: Stage) -> None:
        _, stopped = stage.servers[0]
        os.killpg(stopped.pid, signal.SIGSTOP)
        time.sleep(8)
        os.killpg(stopped.pid, signal.SIGCONT)

    with _stage(servers=2) as stage:
        _work_through(stage, "stopped process", stop, stage.servers[1][0])


def test_payments_sent_twice_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    """The bank's feed sends each of 20 payments twice at the same moment, under its
    key, while the invoices are being issued: each is booked once, none is lost."""
    with _stage() as stage:
        figures = Figures("duplicate payments")
        api = Api(stage.servers[0][0], stage.tokens, figures)
        instances = []
        for n in range(20):
            status, body = api.call(
                "POST", "/instances", "cashier",
                {"definition": "payment_collection", "business_key": f"SO-{n}"},
            )  # fmt: skip
            assert status == 201, body
            instances.append((body["id"], body["tasks"][0]["id"]))

        barriers = [threading.Barrier(3) for _ in instances]  # each order's three at once

        def issue(n: int, task_id: int) -> None:
            barriers[n].wait(10)
            data = {"data": {"invoice_amount": 100.0, "currency": "USD"}}
            api.call("POST", f"/tasks/{task_id}/complete", "cashier", data)

        def pay(n: int) -> None:
            body = {
                "name": "payment_received",
                "business_key": f"SO-{n}",
                "variables": {"amount_received": 100.0},
            }
            barriers[n].wait(10)
            api.call("POST", "/messages", "bank", body, key=f"TT-{n}")

        threads = [
            threading.Thread(target=issue, args=(n, t)) for n, (_, t) in enumerate(instances)
        ]
        threads += [threading.Thread(target=pay, args=(n,)) for n in range(20) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        deadline = time.monotonic() + 10  # the backstop sweep runs once a minute at most
        flow = stage.flow
        while time.monotonic() < deadline:
            open_now = {
                iid: [t.element_id for t in flow.tasks_of(iid) if t.state == TaskState.OPEN]
                for iid, _ in instances
            }
            if all(elements == ["write_off"] for elements in open_now.values()):
                break
            time.sleep(0.5)
        with flow.db.reading() as session:
            received = Counter(
                session.scalars(
                    select(AuditEvent.instance_id).where(AuditEvent.kind == "message_received")
                )
            )
            kept = session.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.kind == "message_buffered")
            )
        assert open_now == {iid: ["write_off"] for iid, _ in instances}  # none lost
        assert received == {iid: 1 for iid, _ in instances}  # each booked once
        assert not [s for s in figures.statuses if s >= 500 and s != 503], figures.statuses
        _consistent(flow)
        print(f"{figures.line()}; {kept} kept first, then handed over")

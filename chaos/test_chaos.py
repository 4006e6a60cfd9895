"""The chaos suite (`make chaos`, outside `make test`): each fault of docs/faults.md,
caused for real against `tradeflow serve` on PostgreSQL while clients work, then the
same checks after each (chaos/stage.py). This file: faults of the database's sessions
and of a server process, and a duplicate payment; chaos/test_restart_and_time.py: the
database server restarted, the clock stepped, readers that stall.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import psycopg
import pytest
from sqlalchemy import func, select

from chaos.stage import CHAOS, Api, Figures, Stage, staged, work_through
from engine.storage import AuditEvent, TaskState
from tests.test_crash import _consistent


def test_a_lock_held_elsewhere(capsys: pytest.CaptureFixture[str]) -> None:
    """An operator's transaction holds the instance table for 8 s."""

    def hold(stage: Stage) -> None:
        with psycopg.connect(stage.url) as conn:
            conn.execute("LOCK TABLE instance IN ACCESS EXCLUSIVE MODE")
            time.sleep(8)

    with staged() as stage:
        figures = work_through(stage, "held lock", hold, stage.servers[0][0])
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

    with staged() as stage:
        figures = work_through(stage, "cancelled statements", cancel, stage.servers[0][0])
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

    with staged() as stage:
        figures = work_through(stage, "terminated connections", terminate, stage.servers[0][0])
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

    with staged(servers=2) as stage:
        work_through(stage, "stopped process", stop, stage.servers[1][0])


def test_payments_sent_twice_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    """The bank's feed sends each of 20 payments twice at the same moment, under its
    key, while the invoices are being issued: each is booked once, none is lost."""
    with staged() as stage:
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

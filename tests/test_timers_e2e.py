"""Timers across processes and crashes, in real time: real `tradeflow serve` and
`tradeflow worker` processes, killed and restarted, sharing one database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.storage import AuditEvent, Database, Instance, InstanceStatus
from engine.tradeflow import Tradeflow
from tests.conftest import ROOT, postgres_database
from tests.test_e2e import _free_port

TRADEFLOW = str(Path(sys.executable).with_name("tradeflow"))

AT = (ROOT / "tests" / "fixtures" / "at_the_time.bpmn").read_bytes()  # wait until fire_at


def _process(args: list[str], url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [TRADEFLOW, *args],
        env={**os.environ, "TRADEFLOW_DATABASE_URL": url},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: killed with its workers
    )


def _kill(process: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return
    process.wait(timeout=30)


def _start_many(flow: Tradeflow, count: int, fire_at: datetime) -> list[int]:
    moment = fire_at.isoformat()
    return [
        flow.start("at_the_time", actor="clerk", variables={"fire_at": moment})
        for _ in range(count)
    ]


def _fired(flow: Tradeflow) -> dict[int, int]:
    """Instance id -> how many timer_fired events it has."""
    with flow.db.reading() as session:
        rows = session.execute(
            select(AuditEvent.instance_id, func.count())
            .where(AuditEvent.kind == "timer_fired")
            .group_by(AuditEvent.instance_id)
        ).all()
    return {int(i): int(n) for i, n in rows if i is not None}


def _wait_until(check: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/timers.db"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with postgres_database("timers") as url:
        yield url


def _prepared(url: str) -> Tradeflow:
    flow = Tradeflow(Database(url))
    flow.upgrade()
    flow.deploy([("at_the_time.bpmn", AT)], actor="owner")
    return flow


def test_timers_due_while_the_server_was_down_fire_once_after_restart(sqlite_url: str) -> None:
    flow = _prepared(sqlite_url)
    fire_at = datetime.now(UTC) + timedelta(seconds=4)
    started = _start_many(flow, 5, fire_at)
    port = str(_free_port())
    server = _process(["serve", "--port", port, "--workers", "2"], sqlite_url)
    time.sleep(1.5)
    _kill(server, signal.SIGKILL)  # no goodbye: crashed with every timer pending
    assert _fired(flow) == {}
    time.sleep(max((fire_at - datetime.now(UTC)).total_seconds() + 1, 0))  # all now overdue
    server = _process(["serve", "--port", port, "--workers", "2"], sqlite_url)
    try:
        _wait_until(lambda: len(_fired(flow)) == len(started), 20)
        time.sleep(1.5)  # a few more sweeps: nothing fires twice
    finally:
        _kill(server, signal.SIGTERM)
    assert _fired(flow) == dict.fromkeys(started, 1)
    for iid in started:
        assert flow.instance(iid).status == InstanceStatus.COMPLETED
    flow.db.dispose()


@pytest.mark.postgres
def test_three_workers_share_hundreds_of_timers_due_at_once(postgres_url: str) -> None:
    flow = _prepared(postgres_url)
    # starting them takes about 2 s here, three times that on a machine others share; the
    # workers start meanwhile (a thousand at once: bench/timers.py)
    fire_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=12)
    started = _start_many(flow, 500, fire_at)
    assert datetime.now(UTC) < fire_at, "starting took too long for the test's plan"
    workers = [_process(["worker", "--sweep", "0.5"], postgres_url) for _ in range(3)]
    try:
        _wait_until(lambda: len(_fired(flow)) == len(started), 90)
        time.sleep(1.5)
    finally:
        for worker in workers:
            _kill(worker, signal.SIGTERM)
    assert _fired(flow) == dict.fromkeys(started, 1)  # each once, none missed
    with flow.db.reading() as session:
        assert session.scalar(
            select(func.count()).where(Instance.status == InstanceStatus.COMPLETED)
        ) == len(started)
        fired_at = session.scalars(
            select(AuditEvent.at).where(AuditEvent.kind == "timer_fired")
        ).all()
    moments = sorted(t.replace(tzinfo=UTC) for t in fired_at)
    assert moments[0] >= fire_at  # none early
    assert moments[-1] - fire_at < timedelta(seconds=20)  # and the last not long after
    flow.db.dispose()

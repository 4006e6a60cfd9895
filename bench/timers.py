"""Timer lateness: 10,000 pending timers, 1,000 of them due in the same second.

Each store (a SQLite file; a PostgreSQL database of its own, skipped if none answers) is
set up through the engine: the diagram below deployed, ``--pending`` instances started
whose timer is due a day later and ``--due`` instances whose timer is due at one moment
T, a few seconds after the last start. Then ``--workers`` real ``tradeflow worker``
processes (the scheduler: a wake-up at the next due time, a sweep every second) run until
every due timer fired. Lateness of a timer = the moment its firing unit of work began
(its ``timer_fired`` audit event) - T. Reported: p50, p99 and max, and whether each timer
fired exactly once and none of the day-later ones fired.

Bare SpiffWorkflow does the same work in the same run: the same 1,000 workflows in SQLite
rows, each loaded, its timers refreshed, its engine run, saved, one after another from T.
Its lateness is its cumulative time; the ratio is bare p99 / ours (above 1: ours is less
late).

    .venv/bin/python -m bench.timers [--pending 9000] [--due 1000]
        [--sqlite-workers 1] [--pg-workers 1,3] [--pg-url postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.camunda.serializer import DEFAULT_CONFIG
from sqlalchemy import func, select

from engine.caches import LiveWorkflows
from engine.db import Database
from engine.models import AuditEvent
from engine.tradeflow import Tradeflow

ROOT = Path(__file__).resolve().parent.parent
TRADEFLOW = Path(sys.executable).with_name("tradeflow")
TARGET_P99 = 1.0
LEAD = 6.0  # seconds between the last start and T: the workers are up by then
DIAGRAM = (ROOT / "tests" / "fixtures" / "at_the_time.bpmn").read_bytes()  # fire_at, then end


@dataclass(frozen=True)
class Result:
    store: str
    workers: int
    lateness: list[float]  # seconds, one per due timer
    once: bool  # every due timer fired exactly once, no day-later one fired
    bare: list[float]

    def p(self, values: list[float], q: int) -> float:
        return (
            statistics.quantiles(values, n=100, method="inclusive")[q - 1]
            if len(values) > 1
            else values[0]
        )


def prepare(url: str, pending: int, due: int) -> tuple[Tradeflow, datetime, list[int]]:
    flow = Tradeflow(Database(url))
    flow.runtime.live = LiveWorkflows(size=0)
    flow.upgrade()
    flow.deploy([("at_the_time.bpmn", DIAGRAM)], actor="bench")
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    for _ in range(pending):
        flow.start("at_the_time", actor="bench", variables={"fire_at": later})
    began = time.perf_counter()
    first = flow.start("at_the_time", actor="bench", variables={"fire_at": later})
    per_start = time.perf_counter() - began
    fire_at = datetime.now(UTC) + timedelta(seconds=due * per_start * 1.3 + LEAD)
    moment = fire_at.isoformat()
    started = [
        flow.start("at_the_time", actor="bench", variables={"fire_at": moment}) for _ in range(due)
    ]
    del first
    return flow, fire_at, started


def run_workers(url: str, count: int, flow: Tradeflow, started: list[int]) -> None:
    env = {**os.environ, "TRADEFLOW_DATABASE_URL": url}
    workers = [
        subprocess.Popen(
            [str(TRADEFLOW), "worker"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(count)
    ]
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and fired_count(flow) < len(started):
            time.sleep(0.2)
        time.sleep(2)  # more sweeps: anything fired twice would show
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)


def fired_count(flow: Tradeflow) -> int:
    with flow.db.reading() as session:
        return int(
            session.scalar(select(func.count()).where(AuditEvent.kind == "timer_fired")) or 0
        )


def lateness(flow: Tradeflow, fire_at: datetime, started: list[int]) -> tuple[list[float], bool]:
    with flow.db.reading() as session:
        rows = session.execute(
            select(AuditEvent.instance_id, AuditEvent.at).where(AuditEvent.kind == "timer_fired")
        ).all()
    by_instance: dict[int, list[datetime]] = {}
    for instance_id, at in rows:
        by_instance.setdefault(int(instance_id), []).append(at.replace(tzinfo=UTC))
    once = sorted(by_instance) == sorted(started) and all(len(v) == 1 for v in by_instance.values())
    return [(v[0] - fire_at).total_seconds() for v in by_instance.values()], once


def bare(due: int, directory: Path) -> list[float]:
    """Bare SpiffWorkflow firing the same timers one after another: cumulative seconds."""
    parser = CamundaParser()
    path = directory / "at_the_time.bpmn"
    path.write_bytes(DIAGRAM)
    parser.add_bpmn_file(str(path))
    spec = parser.get_spec("at_the_time")
    serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(DEFAULT_CONFIG))
    db = sqlite3.connect(directory / "bare.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("DROP TABLE IF EXISTS state")
    db.execute("CREATE TABLE state (id INTEGER PRIMARY KEY, json TEXT NOT NULL)")
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    for n in range(due):
        workflow = BpmnWorkflow(spec)
        for task in workflow.get_tasks():
            task.data["fire_at"] = soon
        workflow.do_engine_steps()
        db.execute("INSERT INTO state VALUES (?, ?)", (n, serializer.serialize_json(workflow)))
    time.sleep(1.1)
    done: list[float] = []
    began = time.perf_counter()
    for n in range(due):
        db.execute("BEGIN IMMEDIATE")
        (state,) = db.execute("SELECT json FROM state WHERE id = ?", (n,)).fetchone()
        workflow = serializer.deserialize_json(state)
        workflow.refresh_timers()
        workflow.do_engine_steps()
        assert workflow.completed
        db.execute(
            "UPDATE state SET json = ? WHERE id = ?", (serializer.serialize_json(workflow), n)
        )
        db.execute("COMMIT")
        done.append(time.perf_counter() - began)
    db.close()
    return done


def measure(store: str, url: str, workers: int, args: argparse.Namespace, tmp: Path) -> Result:
    flow, fire_at, started = prepare(url, args.pending, args.due)
    run_workers(url, workers, flow, started)
    late, once = lateness(flow, fire_at, started)
    flow.db.dispose()
    return Result(store, workers, late, once, bare(args.due, tmp))


def show(result: Result) -> None:
    late, bare_late = result.lateness, result.bare
    p99, bare_p99 = result.p(late, 99), result.p(bare_late, 99)
    print(
        f"  {result.store:10s} {result.workers:>2d}  {1000 * result.p(late, 50):7.0f}"
        f" {1000 * p99:7.0f} {1000 * max(late):7.0f}   {1000 * bare_p99:7.0f}"
        f"  {bare_p99 / p99 if p99 > 0 else float('inf'):5.2f}"
        f"   {'yes' if result.once else 'NO'}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pending", type=int, default=9000, help="due a day later (9000)")
    parser.add_argument("--due", type=int, default=1000, help="due at the same moment (1000)")
    parser.add_argument("--sqlite-workers", default="1", help="worker counts (1)")
    parser.add_argument("--pg-workers", default="1,3", help="worker counts, '' skips (1,3)")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    print(
        f"timer lateness: {args.pending + args.due:,} pending timers, {args.due:,} due at"
        f" once; `tradeflow worker` processes; {os.cpu_count()} CPUs"
    )
    print("                   lateness ms (ours)       bare p99  bare/ours  each once")
    print("  store       w      p50     p99     max")
    results: list[Result] = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tradeflow-timers-") as tmp:
        for workers in [int(n) for n in args.sqlite_workers.split(",") if n.strip()]:
            url = f"sqlite:///{tmp}/timers-{workers}.db"
            results.append(measure("sqlite", url, workers, args, Path(tmp)))
            show(results[-1])
        pg_workers = [int(n) for n in args.pg_workers.split(",") if n.strip()]
        if pg_workers:
            try:
                admin = psycopg.connect(args.pg_url, autocommit=True, connect_timeout=3)
            except psycopg.Error as exc:
                print(f"  PostgreSQL at {args.pg_url} does not answer: skipped ({exc})")
                admin = None
            if admin is not None:
                with admin:
                    for workers in pg_workers:
                        name = f"tradeflow_bench_timers_{workers}"
                        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                        admin.execute(f'CREATE DATABASE "{name}"')
                        url = args.pg_url.rsplit("/", 1)[0] + f"/{name}"
                        try:
                            results.append(measure("postgresql", url, workers, args, Path(tmp)))
                            show(results[-1])
                        finally:
                            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    for result in results:
        p99 = result.p(result.lateness, 99)
        verdict = "met" if p99 <= TARGET_P99 and result.once else "NOT MET"
        print(
            f"  target p99 <= {TARGET_P99:.0f} s, {result.store} x{result.workers}:"
            f" {p99:.2f} s: {verdict}"
        )
    print(f"  ({time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

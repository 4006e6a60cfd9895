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

    .venv/bin/python -m bench.timers [--quick] [--pending 9000] [--due 1000]
        [--sqlite-workers 1] [--pg-workers 1,3] [--pg-url postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from SpiffWorkflow.bpmn import BpmnWorkflow
from sqlalchemy import func, select

from bench.bare import StateTable, parsed, serializer
from bench.harness import ROOT, Column, Table, parse, percentile
from bench.served import spawn, stop
from bench.stores import add_pg_url, postgres
from engine.runtime import LiveWorkflows
from engine.storage import AuditEvent, Database
from engine.tradeflow import Tradeflow

TARGET_P99 = 1.0
LEAD = 6.0  # seconds between the last start and T: the workers are up by then
FIXTURE = ROOT / "tests" / "fixtures" / "at_the_time.bpmn"  # fire_at, then end
DIAGRAM = FIXTURE.read_bytes()


@dataclass(frozen=True)
class Result:
    store: str
    workers: int
    lateness: list[float]  # seconds, one per due timer
    once: bool  # every due timer fired exactly once, no day-later one fired
    bare: list[float]


def prepare(url: str, pending: int, due: int) -> tuple[Tradeflow, datetime, list[int]]:
    flow = Tradeflow(Database(url))
    flow.runtime.live = LiveWorkflows(size=0)
    flow.upgrade()
    flow.deploy([("at_the_time.bpmn", DIAGRAM)], actor="bench")
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    for _ in range(pending):
        flow.start("at_the_time", actor="bench", variables={"fire_at": later})
    began = time.perf_counter()
    flow.start("at_the_time", actor="bench", variables={"fire_at": later})
    per_start = time.perf_counter() - began
    fire_at = datetime.now(UTC) + timedelta(seconds=due * per_start * 1.3 + LEAD)
    moment = fire_at.isoformat()
    started = [
        flow.start("at_the_time", actor="bench", variables={"fire_at": moment}) for _ in range(due)
    ]
    return flow, fire_at, started


def run_workers(url: str, count: int, flow: Tradeflow, started: list[int]) -> None:
    workers = [spawn(url, "worker") for _ in range(count)]
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and fired_count(flow) < len(started):
            time.sleep(0.2)
        time.sleep(2)  # more sweeps: anything fired twice would show
    finally:
        for worker in workers:
            stop(worker, timeout=30)


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
        if instance_id is not None:
            by_instance.setdefault(instance_id, []).append(at.replace(tzinfo=UTC))
    once = sorted(by_instance) == sorted(started) and all(len(v) == 1 for v in by_instance.values())
    return [(v[0] - fire_at).total_seconds() for v in by_instance.values()], once


def bare(due: int, directory: Path) -> list[float]:
    """Bare SpiffWorkflow firing the same timers one after another: cumulative seconds."""
    spec, _ = parsed(FIXTURE, "at_the_time")
    states = serializer()
    table = StateTable(directory / "bare.db")
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    for n in range(due):
        workflow = BpmnWorkflow(spec)
        for task in workflow.get_tasks():
            task.data["fire_at"] = soon
        workflow.do_engine_steps()
        table.insert(n, states.serialize_json(workflow))
    time.sleep(1.1)
    done: list[float] = []
    began = time.perf_counter()
    for n in range(due):
        workflow = states.deserialize_json(table.begin(n))
        workflow.refresh_timers()
        workflow.do_engine_steps()
        assert workflow.completed
        table.commit(n, states.serialize_json(workflow))
        done.append(time.perf_counter() - began)
    table.close()
    return done


def measure(store: str, url: str, workers: int, args: argparse.Namespace, tmp: Path) -> Result:
    flow, fire_at, started = prepare(url, args.pending, args.due)
    run_workers(url, workers, flow, started)
    late, once = lateness(flow, fire_at, started)
    flow.db.dispose()
    return Result(store, workers, late, once, bare(args.due, tmp))


TABLE = Table(
    Column("store", 10, left=True),
    Column("w", 2, "d"),
    Column("lateness ms (ours)\np50", 8, ".0f"),
    Column("\np99", 7, ".0f"),
    Column("\nmax", 7, ".0f"),
    Column("bare ms\np99", 8, ".0f"),
    Column("bare/\nours", 6, ".2f"),
    Column("each\nonce", 5),
)


def show(result: Result) -> None:
    late = result.lateness
    p99, bare_p99 = percentile(late, 0.99), percentile(result.bare, 0.99)
    TABLE.print_row(
        result.store,
        result.workers,
        1000 * percentile(late, 0.5),
        1000 * p99,
        1000 * max(late),
        1000 * bare_p99,
        bare_p99 / p99 if p99 > 0 else float("inf"),
        "yes" if result.once else "NO",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pending", type=int, default=9000, help="due a day later (9000)")
    parser.add_argument("--due", type=int, default=1000, help="due at the same moment (1000)")
    parser.add_argument("--sqlite-workers", default="1", help="worker counts (1)")
    parser.add_argument("--pg-workers", default="1,3", help="worker counts, '' skips (1,3)")
    add_pg_url(parser)
    args = parse(parser, argv, {"pending": 200, "due": 50, "pg_workers": "1"})
    print(
        f"timer lateness: {args.pending + args.due:,} pending timers, {args.due:,} due at"
        f" once; `tradeflow worker` processes; {os.cpu_count()} CPUs"
    )
    TABLE.print_header()
    results: list[Result] = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tradeflow-timers-") as tmp:
        for workers in [int(n) for n in args.sqlite_workers.split(",") if n.strip()]:
            url = f"sqlite:///{tmp}/timers-{workers}.db"
            results.append(measure("sqlite", url, workers, args, Path(tmp)))
            show(results[-1])
        for workers in [int(n) for n in args.pg_workers.split(",") if n.strip()]:
            with postgres(args.pg_url, f"tradeflow_bench_timers_{workers}") as pg_url:
                if pg_url is None:
                    break
                results.append(measure("postgresql", pg_url, workers, args, Path(tmp)))
                show(results[-1])
    for result in results:
        p99 = percentile(result.lateness, 0.99)
        verdict = "met" if p99 <= TARGET_P99 and result.once else "NOT MET"
        print(
            f"  target p99 <= {TARGET_P99:.0f} s, {result.store} x{result.workers}:"
            f" {p99:.2f} s: {verdict}"
        )
    print(f"  ({time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

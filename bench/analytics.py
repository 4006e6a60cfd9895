"""The department's KPIs over a history of 1,000,000 audit events, SQLite and PostgreSQL.

Target (issue 8): ``GET /api/v1/kpis`` and ``GET /api/v1/analytics/elements`` answer in
≤ 2 s over 1,000,000 audit events.

The history (bench/history_fill.py): the database is set up through the engine (schema
with its migrations, shipped files), then a year of inquiry-to-collection orders is
written in bulk, as the unit of work would have left them: per order an instance row,
one task row per step (with its roles, times, due date and who did it) and the audit
events of each step (created, claimed, completed with the form's data, messages,
timers), hash-chained per instance.
Orders differ at random (seeded): customer grade, the sales person who took the inquiry,
how long each step waits and takes, inspections failed and reworked, documents sent
back, late payments chased to recovery or bad debt, surveys with complaints, shipments
after the promised date; the newest orders are still under way. The case facts are then
made by ``facts.rebuild``, the replay the migration runs, and the past days' tasks summed
by ``rollups.roll_up``, as the migration and then the scheduler's sweep do (both timed:
what an existing database pays once on upgrade). The clock stands at the history's end.

The generator counts what the figures must be; the bench checks the engine's answer
against those counts before it times anything.

Timed, each ``--samples`` times after one untimed run (medians, and the slowest):
``GET /api/v1/kpis`` and ``GET /api/v1/analytics/elements`` through the Flask test client
(the whole API in process: token, arguments, the engine's statements, JSON; no socket),
over the whole year, the last 30 days, and one customer grade.

Reference in the same run: reading the whole trail once (every event's kind, element,
instance, time and data, JSON decoded), the least a KPI computed by replaying the trail
would pay; the ratio is ours / that. (Bare SpiffWorkflow keeps no history to measure.)

    .venv/bin/python -m bench.analytics [--quick] [--events 1000000] [--samples 5] [--no-postgres]
        [--pg-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from api import create_app
from bench.harness import Column, Table, parse, sample
from bench.history_fill import NOW, Expected, Stopped, make_history
from bench.stores import add_pg_url, databases
from cli.demo import shipped_files
from engine.people import Flags
from engine.reporting import facts, rollups
from engine.storage import AuditEvent, Database
from engine.tradeflow import Tradeflow

TARGET_SECONDS = 2.0


# -- measuring -----------------------------------------------------------------------------


def read_trail(db: Database) -> float:
    """The reference: every event of the trail read and its data decoded, once."""
    began = time.perf_counter()
    with db.engine.connect() as conn:
        stmt = select(AuditEvent.kind, AuditEvent.element_id, AuditEvent.instance_id,
                      AuditEvent.at, AuditEvent.data)  # fmt: skip
        count = sum(1 for _ in conn.execute(stmt.execution_options(yield_per=10_000)))
    assert count > 0
    return time.perf_counter() - began


def check(body: dict[str, Any], expected: Expected) -> None:
    """The engine's figures against the generator's counts."""
    wants = {
        "fulfilment_rate": expected.shipped_on_promise / expected.shipped,
        "document_first_pass_rate": expected.first_pass / expected.reviewed,
        "overdue_collection_rate": expected.overdue / expected.invoiced,
        "bad_debt_rate": expected.bad_debt / expected.invoiced,
        "complaint_rate": expected.complaints / expected.surveyed,
    }
    for name, want in wants.items():
        if abs((body[name] or 0) - want) > 1e-9:
            raise AssertionError(f"{name}: the engine says {body[name]}, the history {want}")


@dataclass
class Result:
    store: str
    events: int
    orders: int
    tasks: int
    write_seconds: float
    rebuild_seconds: float
    trail_seconds: float
    timings: dict[str, tuple[float, float]]


def measure(name: str, url: str, args: argparse.Namespace) -> Result:
    flow = Tradeflow(Database(url), clock=Stopped())
    flow.upgrade()
    flow.deploy(shipped_files(), actor="bench")
    _, token = flow.add_user("auditor", [], Flags(auditor=True))
    history, wrote = make_history(flow, args.events)
    # the rows are written; a server holds no million dicts, whose traversal by the
    # garbage collector would land in the timings below
    sizes = len(history.events), len(history.instances), len(history.tasks)
    history.events, history.instances, history.tasks, history.roles = [], [], [], []
    gc.collect()
    began = time.perf_counter()
    with flow.db.transaction() as session:
        facts.rebuild(session.connection())
        rollups.roll_up(session.connection(), NOW)
    rebuilt = time.perf_counter() - began
    with flow.db.engine.begin() as conn:  # as autovacuum, or an operator, would have
        conn.exec_driver_sql("ANALYZE")  # (committed: statistics roll back with the rest)
    client = create_app({"TRADEFLOW": flow}).test_client()
    headers = {"Authorization": f"Bearer {token}"}

    def get(path: str) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            response = client.get(path, headers=headers)
            body = response.json
            if response.status_code != 200 or not isinstance(body, dict):
                raise RuntimeError(f"GET {path}: {response.status_code} {response.get_data(True)}")
            return body

        return run

    check(get("/api/v1/kpis")(), history.expected)
    month = (NOW - timedelta(days=30)).isoformat().replace("+00:00", "Z")
    paths = {
        "kpis, the year": "/api/v1/kpis",
        "kpis, last 30 days": f"/api/v1/kpis?since={month}",
        "kpis, grade A": "/api/v1/kpis?grade=A",
        "elements, the year": "/api/v1/analytics/elements",
        "elements, last 30 days": f"/api/v1/analytics/elements?since={month}",
    }
    seconds = sample({label: get(path) for label, path in paths.items()}, args.samples)
    timings = {label: (statistics.median(s), max(s)) for label, s in seconds.items()}
    trail = min(read_trail(flow.db) for _ in range(2))
    flow.db.engine.dispose()
    return Result(name, *sizes,
                  wrote, rebuilt, trail, timings)  # fmt: skip


def show(result: Result) -> None:
    print(
        f"\n{result.store}: {result.events:,} audit events, {result.orders:,} orders,"
        f" {result.tasks:,} tasks; written in {result.write_seconds:.1f} s; case facts"
        f" replayed from the trail and past weeks summed in {result.rebuild_seconds:.1f} s;"
        f" reading the whole trail once: {result.trail_seconds:.2f} s"
    )
    table = Table(
        Column("request", 24, left=True),
        Column("median\nms", 8, ".0f"),
        Column("slowest\nms", 8, ".0f"),
        Column("/ trail", 8, ".2f"),
        Column(f"target\n<= {TARGET_SECONDS:.0f} s", 8, left=True),
    )
    table.print_header()
    for label, (median, slowest) in result.timings.items():
        verdict = "met" if slowest <= TARGET_SECONDS else "MISSED"
        table.print_row(
            label, 1000 * median, 1000 * slowest, median / result.trail_seconds, verdict
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--no-postgres", action="store_true")
    add_pg_url(parser)
    args = parse(parser, argv, {"events": 20_000, "samples": 2})
    results = []
    for store, url in databases("analytics", None if args.no_postgres else args.pg_url):
        results.append(measure(store, url, args))
        show(results[-1])
    missed = [r for r in results for _, slowest in r.timings.values() if slowest > TARGET_SECONDS]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

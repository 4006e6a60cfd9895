"""Inbox latency at 10,000 and 100,000 open tasks, SQLite and PostgreSQL.

The rows come from bench/inbox_fill.py: the database is set up through the engine
(schema with its migrations, so the inbox indexes of 0002 too; shipped files; users),
then bulk instances are inserted, each with one open task and ``--closed`` completed ones,
the open tasks spread over the department's six roles, due dates and priorities. The
measured user holds ``--roles`` (finance and risk_compliance: a third of the tasks).

Measured: ``GET /api/v1/tasks?limit=50&...`` through the Flask test client (the whole API
in process: token check, arguments, the engine's inbox, business keys, JSON; no socket,
no gunicorn), ``--samples`` per query after a warm-up, the queries taking turns. The API
counts only for ``?with_total=true``, so these requests run the engine's page statement
alone. That statement is also timed on its own (cursor time, through ``Tradeflow.inbox``),
and so is the count a ``?with_total=true`` request would add; "rest" is the HTTP p50 less
the page's: the token check, the user's roles, business keys, marshmallow, Flask.

When a target is missed (p95 <= 20 ms at 10,000, <= 50 ms at 100,000), the plan of the
engine's page statement is shown for each query that missed (EXPLAIN QUERY PLAN on
SQLite, EXPLAIN ANALYZE on PostgreSQL), so one can see why.

    .venv/bin/python -m bench.inbox [--quick] [--sizes 10000,100000] [--samples 200] [--warmup 20]
        [--sql-samples 30] [--closed 1] [--roles finance,risk_compliance]
        [--no-postgres] [--no-diagnose] [--sqlite-analyze] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, event

from api import create_app
from bench.harness import Column, Table, parse, percentile, sample
from bench.inbox_fill import (
    ROLES,
    USER,
    Filler,
    analyze,
    open_flow,
    role_templates,
    templates,
)
from bench.stores import add_pg_url, databases
from engine import queues
from engine.tradeflow import Tradeflow

QUERIES = {
    "sort=due": "limit=50&sort=due",
    "sort=priority": "limit=50&sort=priority",
    "overdue=true": "limit=50&sort=due&overdue=true",
}
TARGETS = {10_000: 20.0, 100_000: 50.0}  # p95 ms
PLAN_LINES = 12
PG_NOISE = (  # EXPLAIN ANALYZE lines left out of what is shown
    "Workers Planned",
    "Workers Launched",
    "Worker ",
    "Heap Blocks",
    "Buckets",
    "Recheck Cond",
    "Rows Removed",
    "Heap Fetches",
    "Planning Time",
    "Execution Time",
    "Full-sort Groups",
)


def target_for(size: int) -> float:
    """The p95 target that applies at ``size`` open tasks (the next one up)."""
    for limit, ms in sorted(TARGETS.items()):
        if size <= limit:
            return ms
    return max(TARGETS.values())


# -- measuring -----------------------------------------------------------------------


@dataclass
class SqlTimer:
    """Cursor time of the inbox's statements (count, page), and their last SQL."""

    engine: Engine
    seconds: dict[str, list[float]] = field(default_factory=dict)
    last: dict[str, tuple[str, Any]] = field(default_factory=dict)
    on: bool = False

    def __post_init__(self) -> None:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)

    def _before(self, conn: Connection, *_: Any) -> None:
        conn.info["bench_began"] = time.perf_counter()

    def _after(self, conn: Connection, _c: Any, statement: str, params: Any, *_: Any) -> None:
        began = conn.info.pop("bench_began", None)
        if not self.on or began is None or "FROM human_task" not in statement:
            return
        kind = "count" if statement.lstrip().startswith("SELECT count(") else "page"
        self.seconds.setdefault(kind, []).append(time.perf_counter() - began)
        self.last[kind] = (statement, params)

    @contextmanager
    def timing(self) -> Iterator[dict[str, list[float]]]:
        self.seconds, self.on = {}, True
        try:
            yield self.seconds
        finally:
            self.on = False


@dataclass(frozen=True)
class Latency:
    p50: float
    p95: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        return cls(1000 * percentile(seconds, 0.5), 1000 * percentile(seconds, 0.95))


def inbox_query(name: str) -> queues.InboxQuery:
    """The engine's query for ``QUERIES[name]``, with the count (to time it too)."""
    args = dict(part.split("=") for part in QUERIES[name].split("&"))
    return queues.InboxQuery(
        sort=args.get("sort", "due"),
        limit=int(args.get("limit", "50")),
        overdue=True if args.get("overdue") == "true" else None,
        count=True,
    )


# -- one store -----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    store: str
    size: int
    query: str
    http: Latency
    page: Latency  # the engine's page statement, cursor time
    count: Latency  # the count ?with_total=true adds, cursor time
    visible: int


@dataclass
class Store:
    name: str
    flow: Tradeflow
    client: FlaskClient
    token: str
    filler: Filler
    timer: SqlTimer
    args: argparse.Namespace
    statements: dict[str, dict[str, tuple[str, Any]]] = field(default_factory=dict)

    def measure(self, size: int) -> list[Row]:
        """HTTP latency of each query, then the engine's statements alone."""
        headers = {"Authorization": f"Bearer {self.token}"}

        def get(query: str) -> Callable[[], object]:
            def run() -> object:
                response = self.client.get(f"/api/v1/tasks?{query}", headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"GET /api/v1/tasks?{query}: {response.status_code}")
                return response.json

            return run

        args = self.args
        http = sample({n: get(q) for n, q in QUERIES.items()}, args.samples, args.warmup)
        rows = []
        for name in QUERIES:
            query = inbox_query(name)
            visible = self.flow.inbox(USER, query).total or 0
            with self.timer.timing() as seconds:
                for _ in range(args.sql_samples):
                    self.flow.inbox(USER, query)
            self.statements[name] = dict(self.timer.last)
            rows.append(
                Row(
                    self.name,
                    size,
                    name,
                    Latency.of(http[name]),
                    Latency.of(seconds["page"]),
                    Latency.of(seconds["count"]),
                    visible,
                )
            )
        return rows

    def explain(self, query: str) -> list[str]:
        """The plan of the engine's page statement for ``query``, as last run."""
        statement, params = self.statements[query]["page"]
        db = self.flow.db
        prefix = "EXPLAIN (ANALYZE, COSTS OFF) " if db.is_postgres else "EXPLAIN QUERY PLAN "
        with db.engine.connect() as conn:
            found = list(conn.exec_driver_sql(prefix + statement, params).all())
        if db.is_postgres:
            return [str(r[0]) for r in found if not any(n in str(r[0]) for n in PG_NOISE)]
        return [f"{'  ' * depth(r[1], found)}{r[3]}" for r in found]


def depth(parent: int, rows: list[Any]) -> int:
    parents = {r[0]: r[1] for r in rows}
    level = 0
    while parent in parents:
        parent, level = parents[parent], level + 1
    return level


TABLE = Table(
    Column("store", 10, left=True),
    Column("open", 7, ",d"),
    Column("query", 14, left=True),
    Column("HTTP ms\np50", 7, ".1f"),
    Column("\np95", 7, ".1f"),
    Column("SQL page\np50", 8, ".1f"),
    Column("SQL count\np50", 9, ".1f"),
    Column("rest\np50", 6, ".1f"),
    Column("total", 6, ",d"),
)


def show(row: Row, target: float) -> None:
    TABLE.print_row(
        row.store,
        row.size,
        row.query,
        row.http.p50,
        row.http.p95,
        row.page.p50,
        row.count.p50,
        row.http.p50 - row.page.p50,
        row.visible,
        note="" if row.http.p95 <= target else "MISSED",
    )


def diagnose(store: Store, size: int, rows: list[Row]) -> None:
    """The page statement's plan for each query that missed the target."""
    target = target_for(size)
    missed = [r.query for r in rows if r.http.p95 > target]
    print(f"  -- {store.name}, {size:,} open: {', '.join(missed)} over {target:.0f} ms; plans:")
    for query in missed:
        print(f"     {query} page:")
        for line in store.explain(query)[:PLAN_LINES]:
            print(f"       {line}")


def open_store(name: str, url: str, args: argparse.Namespace) -> Store:
    user_roles = frozenset(args.roles.split(","))
    flow, token = open_flow(url, user_roles)
    filler = Filler(
        flow.db, role_templates(templates(flow)), args.closed, flow.clock.now(), user_roles
    )
    client = create_app({"TRADEFLOW": flow}).test_client()
    return Store(name, flow, client, token, filler, SqlTimer(flow.db.engine), args)


def run_store(name: str, url: str, args: argparse.Namespace) -> list[Row]:
    store = open_store(name, url, args)
    rows: list[Row] = []
    try:
        for size in args.sizes:
            seconds = store.filler.fill(size - store.filler.open_tasks)
            analyze(store.flow.db, args.sqlite_analyze)
            print(
                f"  {name}: {store.filler.open_tasks:,} open tasks"
                f" (+{args.closed} completed each) in {seconds:.1f} s",
                flush=True,
            )
            measured = store.measure(size)
            for row in measured:
                show(row, target_for(size))
            rows.extend(measured)
            if args.diagnose and any(r.http.p95 > target_for(size) for r in measured):
                diagnose(store, size, measured)
    finally:
        store.flow.db.dispose()
    return rows


def summary(rows: list[Row]) -> None:
    print("summary: HTTP p95 ms of GET /api/v1/tasks?limit=50 (target), worst query first")
    for store, size in dict.fromkeys((r.store, r.size) for r in rows):
        group = sorted(
            (r for r in rows if (r.store, r.size) == (store, size)), key=lambda r: -r.http.p95
        )
        target = target_for(size)
        verdict = "met" if all(r.http.p95 <= target for r in group) else "NOT MET"
        print(
            f"  {store:10s} {size:>7,d}  "
            + "  ".join(f"{r.query} {r.http.p95:.1f}" for r in group)
            + f"   (<= {target:.0f}: {verdict})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,100000", help="open tasks (10000,100000)")
    parser.add_argument("--samples", type=int, default=200, help="per query (200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed first (20)")
    parser.add_argument(
        "--sql-samples", type=int, default=30, help="the engine's statements alone, per query (30)"
    )
    parser.add_argument("--closed", type=int, default=1, help="completed tasks per open one (1)")
    parser.add_argument(
        "--roles", default="finance,risk_compliance", help="the measured user's roles"
    )
    parser.add_argument("--no-postgres", dest="postgres", action="store_false")
    parser.add_argument(
        "--no-diagnose", dest="diagnose", action="store_false", help="no plans when missed"
    )
    parser.add_argument(
        "--sqlite-analyze", action="store_true", help="run ANALYZE on SQLite after each fill"
    )
    add_pg_url(parser)
    args = parse(parser, argv, {"sizes": "500,1000", "samples": 5, "warmup": 2, "sql_samples": 3})
    args.sizes = sorted(int(n) for n in args.sizes.split(",") if n.strip())
    if not args.sizes or args.sizes[0] < 1 or args.closed < 0:
        parser.error("--sizes must be positive, --closed not negative")
    if min(args.samples, args.sql_samples) < 2:
        parser.error("--samples and --sql-samples: 2 at least")
    if not set(args.roles.split(",")) <= set(ROLES):
        parser.error(f"--roles: from {', '.join(ROLES)}")

    began = time.perf_counter()
    print(
        f"inbox latency, GET /api/v1/tasks?limit=50 as {USER} ({args.roles}), Flask test"
        f" client, {args.samples} samples per query after {args.warmup} warm-up"
    )
    TABLE.print_header()
    rows: list[Row] = []
    for store, url in databases("inbox", args.pg_url if args.postgres else None):
        rows += run_store(store, url, args)
    summary(rows)
    print(f"  ({time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

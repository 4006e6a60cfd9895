"""The department's KPIs over a history of 1,000,000 audit events, SQLite and PostgreSQL.

Target (issue 8): ``GET /api/v1/kpis`` and ``GET /api/v1/analytics/elements`` answer in
≤ 2 s over 1,000,000 audit events.

The history: the database is set up through the engine (schema with its migrations,
shipped files), then a year of inquiry-to-collection orders is written in bulk, as the
unit of work would have left them: per order an instance row, one task row per step (with
its roles, times, due date and who did it) and the audit events of each step (created,
claimed, completed with the form's data, messages, timers), hash-chained per instance.
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

    .venv/bin/python bench/analytics.py [--events 1000000] [--samples 5] [--no-postgres]
        [--pg-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from completions import shipped_files
from http_completions import pg_admin, pg_database
from sqlalchemy import insert, select

from api import create_app
from engine import facts, rollups
from engine.audit import GENESIS, canonical_data, event_hash, instance_stream
from engine.db import Database
from engine.models import (
    AuditEvent,
    Definition,
    HumanTask,
    HumanTaskRole,
    Instance,
    InstanceStatus,
    TaskState,
)
from engine.tradeflow import Tradeflow
from engine.users import Flags

TARGET_SECONDS = 2.0
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SALES = ("wang.fang", "li.na", "zhang.wei", "chen.hao")
GRADES = (("A", 0.15), ("B", 0.45), ("C", 0.3), ("D", 0.1))

# the steps of an order: element, role, limit (hours; None: no limit)
QUOTE = [
    ("prepare_quotation", "market_development", 24),
    ("send_quotation", "market_development", 8),
]
CONTRACT = [
    ("draft_contract", "order_execution", 16),
    ("review_contract", "risk_compliance", 16),
    ("sign_contract", "order_execution", 24),
]
MAKE = [("coordinate_production", "order_execution", 24), ("produce_order", "production", None)]
INSPECT = [("inspect_goods", "quality", 16)]
REWORK = [("rework_goods", "production", None)]
SHIP = [("book_shipment", "documents_logistics", 16)]
DOCS = [("prepare_documents", "documents_logistics", 8), ("review_documents", "risk_compliance", 8)]
CUSTOMS = [("declare_customs", "documents_logistics", 16)]
SURVEY = [("satisfaction_survey", "order_execution", 40)]
INVOICE = [("issue_invoice", "finance", 8)]
PAID = [("write_off", "finance", 8)]
LATE = [("send_payment_reminder", "finance", 8), ("chase_payment", "risk_compliance", 40)]


@dataclass
class Expected:
    """What the figures must be, counted while the history is made."""

    shipped: int = 0
    shipped_on_promise: int = 0
    reviewed: int = 0
    first_pass: int = 0
    invoiced: int = 0
    overdue: int = 0
    bad_debt: int = 0
    surveyed: int = 0
    complaints: int = 0


@dataclass
class History:
    rng: random.Random
    definition_id: int
    instances: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    roles: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    expected: Expected = field(default_factory=Expected)
    next_task: int = 1

    def order(self, instance_id: int, started: datetime) -> None:
        rng, e = self.rng, self.expected
        grade = rng.choices([g for g, _ in GRADES], [w for _, w in GRADES])[0]
        owner = rng.choice(SALES)
        key = f"SO-{instance_id:07d}"
        stream = instance_stream(instance_id)
        chain = Chain(self.events, stream, instance_id)
        chain.add("instance_started", started, owner, "inquiry_to_collection",
                  {"definition": "inquiry_to_collection", "version": 1, "business_key": key,
                   "variables": {}})  # fmt: skip
        at = started
        done = True

        def steps(
            plan: list[tuple[str, str, int | None]], data: Callable[[str], dict[str, Any]]
        ) -> bool:
            nonlocal at
            for element, role, limit in plan:
                if at > NOW:
                    return False
                at = self.task(chain, element, role, limit, at, owner, data(element))
            return at <= NOW

        plain: Callable[[str], dict[str, Any]] = lambda element: {}  # noqa: E731
        quote = {"customer_grade": grade, "quantity": rng.randrange(500, 20000)}
        if not steps(QUOTE, lambda el: quote if el == "prepare_quotation" else {}):
            done = False
        if done:
            at += timedelta(days=rng.uniform(0.5, 5))
            chain.add(
                "message_received", at, "erp", "quotation_accepted", {"name": "quotation_accepted"}
            )
            promised = (at + timedelta(days=rng.uniform(20, 45))).date()
            contract = {"delivery_date": promised.isoformat()}
            done = steps(CONTRACT, lambda el: contract if el == "draft_contract" else {})
        if done:
            done = steps(MAKE, plain)
            failed = rng.random() < 0.15
            while done:
                result = {"inspection_result": "fail" if failed else "pass"}
                done = steps(INSPECT, lambda el, result=result: result)
                if not failed or not done:
                    break
                done = steps(REWORK, plain)
                failed = False
        if done:
            done = steps(SHIP, plain)
            rejected = rng.random() < 0.2
            first = True
            while done:
                ok = not rejected
                review = {"documents_ok": ok}
                done = steps(DOCS, lambda el, r=review: r if el == "review_documents" else {})
                if done and first:
                    e.reviewed += 1
                    e.first_pass += 1 if ok else 0
                    first = False
                if ok or not done:
                    break
                rejected = False
        if done:
            done = steps(CUSTOMS, plain)
            if done:
                e.shipped += 1
                e.shipped_on_promise += 1 if (at + timedelta(hours=8)).date() <= promised else 0
        if done:
            complaint = rng.random() < 0.08
            score = str(rng.choice((2, 3, 4, 4, 5, 5)) if not complaint else rng.choice((1, 2)))
            survey = {"satisfaction": score, "complaint": complaint}
            done = steps(SURVEY, lambda el: survey)
            if done:
                e.surveyed += 1
                e.complaints += 1 if complaint else 0
                done = steps(INVOICE, plain)
                e.invoiced += 1 if done else 0
        if done:
            late = rng.random() < 0.12
            if not late:
                at += timedelta(days=rng.uniform(3, 29))
                done = at <= NOW
                if done:
                    chain.add("message_received", at, "bank", "payment_received",
                              {"name": "payment_received"})  # fmt: skip
                    done = steps(PAID, plain)
            else:
                at += timedelta(days=30)
                if at <= NOW:
                    e.overdue += 1
                    chain.add("timer_fired", at, "system", "payment_overdue", {})
                    bad = rng.random() < 0.3
                    outcome = {"outcome": "bad_debt" if bad else "recovered"}
                    done = steps(LATE, lambda el: outcome if el == "chase_payment" else {})
                    e.bad_debt += 1 if done and bad else 0
                else:
                    done = False
        if done:
            chain.add("instance_completed", at, "system", None, {"variables": {}})
        self.instances.append({
            "id": instance_id, "definition_id": self.definition_id, "business_key": key,
            "status": InstanceStatus.COMPLETED if done else InstanceStatus.RUNNING,
            "state": "{}", "started_at": started, "started_by": owner, "updated_at": min(at, NOW),
            "ended_at": at if done else None, "next_wakeup_at": None, "error": None,
            "revision": chain.seq, "audit_seq": chain.seq, "audit_hash": chain.head,
        })  # fmt: skip

    def task(
        self,
        chain: Chain,
        element: str,
        role: str,
        limit: int | None,
        at: datetime,
        owner: str,
        data: dict[str, Any],
    ) -> datetime:
        """One occurrence of a step, from ``at``: waits, is claimed, is worked on (unless
        the history ends first); answers when it was done."""
        rng = self.rng
        created = at
        claimed = created + timedelta(hours=rng.expovariate(1 / 6))
        ended = claimed + timedelta(hours=rng.expovariate(1 / 2))
        user = owner if role == "market_development" else f"{role}.{rng.randrange(3)}"
        task_id = self.next_task
        self.next_task += 1
        due = created + timedelta(hours=limit) if limit else None
        is_claimed, is_done = claimed <= NOW, ended <= NOW
        self.tasks.append({
            "id": task_id, "instance_id": chain.instance_id, "spiff_task_id": f"t-{task_id}",
            "element_id": element, "name": element.replace("_", " ").capitalize(),
            "state": TaskState.COMPLETED if is_done else TaskState.OPEN,
            "assignee": user if is_claimed else None, "priority": 50, "form_key": element,
            "created_at": created, "claimed_at": claimed if is_claimed else None,
            "ended_at": ended if is_done else None, "completed_by": user if is_done else None,
            "due_at": due, "breached_at": None, "candidate_roles": role,
        })  # fmt: skip
        self.roles.append({"task_id": task_id, "role_id": role})
        chain.add("task_created", created, "system", element, {"task_id": task_id}, role)
        if is_claimed:
            chain.add("task_claimed", claimed, user, element, {"task_id": task_id}, role)
        if is_done:
            chain.add("task_completed", ended, user, element,
                      {"task_id": task_id, "submitted": data, "changes": {}}, role)  # fmt: skip
        return ended


@dataclass
class Chain:
    """One instance's stream of events, linked as the audit trail links them."""

    events: list[dict[str, Any]]
    stream: str
    instance_id: int
    seq: int = 0
    head: str = GENESIS

    def add(
        self,
        kind: str,
        at: datetime,
        actor: str,
        element: str | None,
        data: dict[str, Any],
        role: str | None = None,
    ) -> None:
        self.seq += 1
        text = canonical_data(data)
        row = {
            "stream": self.stream, "seq": self.seq, "instance_id": self.instance_id, "at": at,
            "actor": actor, "kind": kind, "element_id": element, "element_name": element,
            "role": role, "data": text, "prev_hash": self.head,
        }  # fmt: skip
        row["hash"] = self.head = event_hash(row, text)
        self.events.append(row)


def make_history(flow: Tradeflow, events: int, seed: int = 7) -> tuple[History, float]:
    """Orders over the year before NOW until ``events`` audit events; seconds to write."""
    with flow.db.reading() as session:
        definition_id = session.scalar(
            select(Definition.id).where(Definition.key == "inquiry_to_collection")
        )
    history = History(random.Random(seed), int(definition_id or 0))
    instance_id = 1_000_000
    while len(history.events) < events:
        started = NOW - timedelta(days=365) + timedelta(days=history.rng.uniform(0, 365))
        history.order(instance_id, started)
        instance_id += 1
    began = time.perf_counter()
    with flow.db.transaction() as session:
        conn = session.connection()
        for table, rows in (
            (Instance, history.instances),
            (HumanTask, history.tasks),
            (HumanTaskRole, history.roles),
            (AuditEvent, history.events),
        ):
            for i in range(0, len(rows), 10_000):
                conn.execute(insert(table.__table__), rows[i : i + 10_000])  # type: ignore[arg-type]
    return history, time.perf_counter() - began


class Stopped:
    """The engine's clock, at the end of the history."""

    def now(self) -> datetime:
        return NOW


# -- measuring -----------------------------------------------------------------------------


def timed(run: Callable[[], object], samples: int) -> tuple[float, float]:
    """(median, slowest) seconds of ``samples`` runs after an untimed one."""
    run()
    found = []
    for _ in range(samples):
        began = time.perf_counter()
        run()
        found.append(time.perf_counter() - began)
    return statistics.median(found), max(found)


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
        rollups.roll_up(session.connection(), NOW, flow.db.is_postgres)
    rebuilt = time.perf_counter() - began
    with flow.db.engine.begin() as conn:  # as autovacuum, or an operator, would have
        conn.exec_driver_sql("ANALYZE")  # (committed: statistics roll back with the rest)
    client = create_app({"TRADEFLOW": flow}).test_client()
    headers = {"Authorization": f"Bearer {token}"}

    def get(path: str) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            response = client.get(path, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"GET {path}: {response.status_code} {response.get_data(True)}")
            return response.json  # type: ignore[no-any-return]

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
    timings = {label: timed(get(path), args.samples) for label, path in paths.items()}
    trail = min(read_trail(flow.db) for _ in range(2))
    flow.db.engine.dispose()
    return Result(name, *sizes,
                  wrote, rebuilt, trail, timings)  # fmt: skip


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{tmp}/analytics.db"


def show(result: Result) -> None:
    print(f"\n{result.store}: {result.events:,} audit events, {result.orders:,} orders, "
          f"{result.tasks:,} tasks; written in {result.write_seconds:.1f} s; case facts "
          f"replayed from the trail and past weeks summed in {result.rebuild_seconds:.1f} s; "
          f"reading the whole trail once: {result.trail_seconds:.2f} s")  # fmt: skip
    print(f"  {'request':<24} {'median':>8} {'slowest':>8} {'/ trail':>8}  target ≤ 2 s")
    for label, (median, slowest) in result.timings.items():
        verdict = "met" if slowest <= TARGET_SECONDS else "MISSED"
        print(f"  {label:<24} {median * 1000:>6.0f}ms {slowest * 1000:>6.0f}ms "
              f"{median / result.trail_seconds:>8.2f}  {verdict}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    results = []
    with sqlite_url() as url:
        results.append(measure("SQLite", url, args))
        show(results[-1])
    admin = None if args.no_postgres else pg_admin(args.pg_url)
    if admin is not None:
        with pg_database(admin, args.pg_url, "tradeflow_bench_analytics") as url:
            results.append(measure("PostgreSQL", url, args))
            show(results[-1])
    missed = [r for r in results for _, slowest in r.timings.values() if slowest > TARGET_SECONDS]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

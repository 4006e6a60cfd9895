"""A year of inquiry-to-collection orders for bench/analytics.py, written in bulk as the
unit of work would have left them: per order an instance row, one task row per step (with
its roles, times, due date and who did it) and the audit events of each step (created,
claimed, completed with the form's data, messages, timers), hash-chained per instance.
Orders differ at random (seeded); ``Expected`` counts what five of the rates must be.

The rows are the storage layer's own (bench/rows.py): the store's InstanceRow and TaskRow,
the audit trail's events. On its own it fills a fresh database and says how fast:

    .venv/bin/python -m bench.history_fill [--events 100000] [--postgres] [--quick]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bench.harness import parse
from bench.rows import Trail, write
from bench.stores import add_pg_url, databases
from cli.demo import shipped_files
from engine.audit import EventKind
from engine.storage import Database, Definition, InstanceRow, InstanceStatus, TaskRow, TaskState
from engine.tradeflow import Tradeflow

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SALES = ("wang.fang", "li.na", "zhang.wei", "chen.hao")
GRADES = (("A", 0.15), ("B", 0.45), ("C", 0.3), ("D", 0.1))

# the steps of an order: element, role, limit (hours; None: no limit)
Plan = Sequence[tuple[str, str, int | None]]
QUOTE: Plan = [
    ("prepare_quotation", "market_development", 24),
    ("send_quotation", "market_development", 8),
]
CONTRACT: Plan = [
    ("draft_contract", "order_execution", 16),
    ("review_contract", "risk_compliance", 16),
    ("sign_contract", "order_execution", 24),
]
MAKE: Plan = [
    ("coordinate_production", "order_execution", 24),
    ("produce_order", "production", None),
]
INSPECT: Plan = [("inspect_goods", "quality", 16)]
REWORK: Plan = [("rework_goods", "production", None)]
SHIP: Plan = [("book_shipment", "documents_logistics", 16)]
DOCS: Plan = [
    ("prepare_documents", "documents_logistics", 8),
    ("review_documents", "risk_compliance", 8),
]
CUSTOMS: Plan = [("declare_customs", "documents_logistics", 16)]
SURVEY: Plan = [("satisfaction_survey", "order_execution", 40)]
INVOICE: Plan = [("issue_invoice", "finance", 8)]
PAID: Plan = [("write_off", "finance", 8)]
LATE: Plan = [("send_payment_reminder", "finance", 8), ("chase_payment", "risk_compliance", 40)]


def only(element: str | None, data: dict[str, Any]) -> Callable[[str], dict[str, Any]]:
    """A step's form data: ``data`` for ``element`` (for every step where None), else {}."""
    return lambda step: data if element is None or step == element else {}


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
    instances: list[InstanceRow] = field(default_factory=list)
    tasks: list[TaskRow] = field(default_factory=list)
    roles: list[tuple[int, str]] = field(default_factory=list)  # (task id, role id)
    events: list[dict[str, Any]] = field(default_factory=list)
    expected: Expected = field(default_factory=Expected)
    next_task: int = 1

    def order(self, instance_id: int, started: datetime) -> None:
        rng, e = self.rng, self.expected
        grade = rng.choices([g for g, _ in GRADES], [w for _, w in GRADES])[0]
        owner = rng.choice(SALES)
        key = f"SO-{instance_id:07d}"
        chain = Trail(instance_id, self.events)
        chain.add(EventKind.INSTANCE_STARTED, started, owner, "inquiry_to_collection",
                  {"definition": "inquiry_to_collection", "version": 1, "business_key": key,
                   "variables": {}})  # fmt: skip
        at = started
        done = True

        def steps(plan: Plan, data: Callable[[str], dict[str, Any]]) -> bool:
            nonlocal at
            for element, role, limit in plan:
                if at > NOW:
                    return False
                at = self.task(chain, element, role, limit, at, owner, data(element))
            return at <= NOW

        plain = only(None, {})
        quote = {"customer_grade": grade, "quantity": rng.randrange(500, 20000)}
        if not steps(QUOTE, only("prepare_quotation", quote)):
            done = False
        if done:
            at += timedelta(days=rng.uniform(0.5, 5))
            chain.add(
                EventKind.MESSAGE_RECEIVED,
                at,
                "erp",
                "quotation_accepted",
                {"name": "quotation_accepted"},
            )
            promised = (at + timedelta(days=rng.uniform(20, 45))).date()
            contract = {"delivery_date": promised.isoformat()}
            done = steps(CONTRACT, only("draft_contract", contract))
        if done:
            done = steps(MAKE, plain)
            failed = rng.random() < 0.15
            while done:
                result = {"inspection_result": "fail" if failed else "pass"}
                done = steps(INSPECT, only(None, result))
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
                done = steps(DOCS, only("review_documents", review))
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
            done = steps(SURVEY, only(None, survey))
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
                    chain.add(EventKind.MESSAGE_RECEIVED, at, "bank", "payment_received",
                              {"name": "payment_received"})  # fmt: skip
                    done = steps(PAID, plain)
            else:
                at += timedelta(days=30)
                if at <= NOW:
                    e.overdue += 1
                    chain.add(EventKind.TIMER_FIRED, at, "system", "payment_overdue", {})
                    bad = rng.random() < 0.3
                    outcome = {"outcome": "bad_debt" if bad else "recovered"}
                    done = steps(LATE, only("chase_payment", outcome))
                    e.bad_debt += 1 if done and bad else 0
                else:
                    done = False
        if done:
            chain.add(EventKind.INSTANCE_COMPLETED, at, "system", None, {"variables": {}})
        seq, head = chain.head
        self.instances.append(
            InstanceRow(
                id=instance_id,
                definition_id=self.definition_id,
                business_key=key,
                status=InstanceStatus.COMPLETED if done else InstanceStatus.RUNNING,
                state="{}",
                started_at=started,
                started_by=owner,
                updated_at=min(at, NOW),
                ended_at=at if done else None,
                next_wakeup_at=None,
                error=None,
                revision=seq,
                audit_seq=seq,
                audit_hash=head,
            )
        )

    def task(
        self,
        chain: Trail,
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
        self.tasks.append(
            TaskRow(
                id=task_id,
                instance_id=chain.instance_id,
                spiff_task_id=f"t-{task_id}",
                element_id=element,
                name=element.replace("_", " ").capitalize(),
                state=TaskState.COMPLETED if is_done else TaskState.OPEN,
                assignee=user if is_claimed else None,
                priority=50,
                form_key=element,
                created_at=created,
                claimed_at=claimed if is_claimed else None,
                ended_at=ended if is_done else None,
                completed_by=user if is_done else None,
                due_at=due,
                candidate_roles=role,
            )
        )
        self.roles.append((task_id, role))
        chain.add(EventKind.TASK_CREATED, created, "system", element, {"task_id": task_id}, role)
        if is_claimed:
            chain.add(EventKind.TASK_CLAIMED, claimed, user, element, {"task_id": task_id}, role)
        if is_done:
            submitted = {"task_id": task_id, "submitted": data, "changes": {}}
            chain.add(EventKind.TASK_COMPLETED, ended, user, element, submitted, role)
        return ended


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
        write(conn, history.instances, history.tasks, history.roles, history.events)
    return history, time.perf_counter() - began


class Stopped:
    """The engine's clock, at the end of the history."""

    def now(self) -> datetime:
        return NOW


def fill(url: str, events: int) -> None:
    """A fresh database at ``url``, the history written into it; how fast, said."""
    flow = Tradeflow(Database(url), clock=Stopped())
    flow.upgrade()
    flow.deploy(shipped_files(), actor="bench")
    began = time.perf_counter()
    history, wrote = make_history(flow, events)
    made = time.perf_counter() - began - wrote
    flow.db.dispose()
    print(
        f"  {flow.db.engine.dialect.name}: {len(history.events):,} audit events,"
        f" {len(history.instances):,} orders, {len(history.tasks):,} tasks: made in"
        f" {made:.2f} s, written in {wrote:.2f} s ({len(history.events) / wrote:,.0f} events/s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000, help="audit events (100000)")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL too")
    add_pg_url(parser)
    args = parse(parser, argv, {"events": 5_000})
    for _, url in databases("history", args.pg_url if args.postgres else None):
        fill(url, args.events)
    return 0


if __name__ == "__main__":
    sys.exit(main())

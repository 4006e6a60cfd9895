"""Bulk rows for bench/inbox.py: open tasks that look like the engine's, fast.

The database is set up through the engine (schema, shipped files, users), then one real
instance of each shipped process is started, and its instance row and open task row are
the templates of the bulk rows: the store's InstanceRow (definition, state, audit head)
and TaskRow (element, name, form, priority, roles), copied and written in bulk by the
storage layer's own inserts (bench/rows.py). Each bulk instance has one open task and
``closed`` completed ones before it (the history a real database keeps, with its role
rows). Tasks are spread evenly over six of the department's roles, due dates from ten
days ago to thirty days ahead (one in ten without), priorities from 10 to 90, one task in
seven claimed by a colleague and one in fifty by the measured user (``USER``).

On its own it fills a fresh database and says how fast:

    .venv/bin/python -m bench.inbox_fill [--open 100000] [--closed 1] [--postgres] [--quick]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import func, select

from bench.harness import parse
from bench.rows import instance_row, move_sequences, task_row, write
from bench.stores import add_pg_url, databases
from cli.demo import SAMPLES, shipped_files
from engine.storage import Database, HumanTask, Instance, InstanceRow, TaskRow, TaskState
from engine.tradeflow import Tradeflow

ROLES = (
    "documents_logistics",
    "risk_compliance",
    "finance",
    "order_execution",
    "manager",
    "market_development",
)
STARTS = ["customer_development", "document_review", "order_fulfilment", "payment_collection"]
USER = "ana"
COLLEAGUES = ("ben", "cem", "dora", "emil")
PRIORITIES = (10, 30, 50, 50, 50, 70, 80, 90)
CHUNK = 5_000


@dataclass(frozen=True)
class Template:
    """A real instance with one open task, as the engine wrote them."""

    instance: InstanceRow
    task: TaskRow


def templates(flow: Tradeflow) -> dict[str, Template]:
    """Start one instance of each shipped process; element id -> its rows."""
    started = [flow.start(key, actor="boss", business_key=f"T-{key}") for key in STARTS]
    # one more document_review, a step on: its open task is the review (risk_compliance)
    review = flow.start("document_review", actor="boss", business_key="T-document_review-2")
    [prepare] = flow.tasks_of(review)
    flow.complete(prepare.id, actor="ben", data={"invoice_number": "INV-T-1"})
    # a quotation big enough to need the manager's approval
    big = flow.start("inquiry_to_collection", actor="boss", business_key="T-inquiry")
    [quote] = flow.tasks_of(big)
    data = {**SAMPLES["prepare_quotation"], "quantity": 12_000}
    flow.complete(quote.id, actor="ben", data=data)
    started += [review, big]
    found: dict[str, Template] = {}
    for instance_id in started:
        instance = instance_row(flow.instance(instance_id))
        for task in flow.tasks_of(instance_id):
            if task.state == TaskState.OPEN:
                found[task.element_id] = Template(instance, task_row(task))
    return found


def role_templates(found: dict[str, Template]) -> dict[str, tuple[Template, str]]:
    """For each role: a template task and the candidate roles a task of it carries."""
    by_role: dict[str, tuple[Template, str]] = {}
    for template in found.values():
        roles = template.task.candidate_roles
        if "," not in roles and roles not in by_role:
            by_role[roles] = (template, roles)
    missing = set(ROLES) - by_role.keys()
    if missing:
        raise RuntimeError(f"no shipped user task for roles {sorted(missing)}")
    return by_role


@dataclass
class Filler:
    """Inserts bulk rows that look like the engine's, in chunks."""

    db: Database
    by_role: dict[str, tuple[Template, str]]
    closed: int
    now: datetime
    user_roles: frozenset[str]
    rng: random.Random = field(default_factory=lambda: random.Random(20261127))
    instances: int = 0
    open_tasks: int = 0

    def fill(self, count: int) -> float:
        """Add ``count`` instances with an open task each; seconds taken."""
        began = time.perf_counter()
        with self.db.engine.begin() as conn:
            next_instance = (conn.scalar(select(func.max(Instance.id))) or 0) + 1
            next_task = (conn.scalar(select(func.max(HumanTask.id))) or 0) + 1
            for start in range(0, count, CHUNK):
                instances, tasks, roles = self._rows(
                    min(CHUNK, count - start), next_instance, next_task
                )
                write(conn, instances, tasks, roles)
                next_instance += len(instances)
                next_task += len(tasks)
            move_sequences(conn)
        self.open_tasks += count
        return time.perf_counter() - began

    def _rows(
        self, count: int, first_instance: int, first_task: int
    ) -> tuple[list[InstanceRow], list[TaskRow], list[tuple[int, str]]]:
        rng, now = self.rng, self.now
        instances: list[InstanceRow] = []
        tasks: list[TaskRow] = []
        roles: list[tuple[int, str]] = []
        task_id = first_task
        for n in range(count):
            instance_id = first_instance + n
            self.instances += 1
            role = ROLES[rng.randrange(len(ROLES))]
            template, candidates = self.by_role[role]
            started = now - timedelta(days=rng.uniform(0, 40))
            instances.append(
                replace(
                    template.instance,
                    id=instance_id,
                    business_key=f"BK-{self.instances:07d}",
                    started_at=started,
                    updated_at=started,
                    started_by=COLLEAGUES[rng.randrange(len(COLLEAGUES))],
                )
            )
            for step in range(self.closed + 1):
                is_open = step == self.closed
                created = started + timedelta(hours=step * 4 + rng.uniform(0, 4))
                due: datetime | None = None
                if is_open and rng.random() >= 0.1:
                    due = now + timedelta(days=rng.uniform(-10, 30))
                assignee: str | None = None
                if is_open:
                    pick = rng.random()
                    if pick < 0.02 and set(candidates.split(",")) & self.user_roles:
                        assignee = USER
                    elif pick < 0.16:
                        assignee = COLLEAGUES[rng.randrange(len(COLLEAGUES))]
                tasks.append(
                    replace(
                        template.task,
                        id=task_id,
                        instance_id=instance_id,
                        spiff_task_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                        state=TaskState.OPEN if is_open else TaskState.COMPLETED,
                        assignee=assignee if is_open else COLLEAGUES[step % len(COLLEAGUES)],
                        priority=PRIORITIES[rng.randrange(len(PRIORITIES))],
                        created_at=created,
                        claimed_at=created if assignee or not is_open else None,
                        ended_at=None if is_open else created + timedelta(hours=1),
                        completed_by=None if is_open else COLLEAGUES[step % len(COLLEAGUES)],
                        due_at=due,
                        candidate_roles=candidates,
                    )
                )
                roles.extend((task_id, r) for r in candidates.split(","))
                task_id += 1
        return instances, tasks, roles


def analyze(db: Database, sqlite_too: bool) -> None:
    """PostgreSQL: what autovacuum would have done after such an insert. SQLite only with
    --sqlite-analyze: the engine never runs ANALYZE, so its planner has no statistics."""
    if db.is_postgres:
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    elif sqlite_too:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def open_flow(url: str, user_roles: frozenset[str]) -> tuple[Tradeflow, str]:
    """A fresh database at ``url`` set up through the engine: schema, shipped files, the
    measured user (with ``user_roles``), the boss and the colleagues; (flow, the measured
    user's token)."""
    flow = Tradeflow(Database(url))
    flow.upgrade()
    flow.deploy(shipped_files(), actor="bench")
    _, token = flow.add_user(USER, sorted(user_roles))
    flow.add_user("boss", list(ROLES))
    for colleague in COLLEAGUES:
        flow.add_user(colleague, list(ROLES))
    return flow, token


def filled(url: str, count: int, closed: int) -> None:
    """``count`` instances written into a fresh database; how fast, said."""
    user_roles = frozenset({"finance", "risk_compliance"})
    flow, _ = open_flow(url, user_roles)
    filler = Filler(flow.db, role_templates(templates(flow)), closed, flow.clock.now(), user_roles)
    seconds = filler.fill(count)
    flow.db.dispose()
    print(
        f"  {flow.db.engine.dialect.name}: {count:,} instances, {count * (closed + 1):,} tasks"
        f" in {seconds:.2f} s ({count / seconds:,.0f} instances/s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--open", type=int, default=100_000, help="open tasks (100000)")
    parser.add_argument("--closed", type=int, default=1, help="completed tasks per open one (1)")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL too")
    add_pg_url(parser)
    args = parse(parser, argv, {"open": 5_000})
    for _, url in databases("inbox_fill", args.pg_url if args.postgres else None):
        filled(url, args.open, args.closed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

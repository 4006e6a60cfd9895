"""Bulk rows for bench/inbox.py: open tasks that look like the engine's, fast.

The database is set up through the engine (schema, shipped files, users), then one real
instance of each shipped process is started, and its instance row and open task row are
the templates of the bulk rows: instance (definition, state, audit head), human_task
(element, name, form, priority, roles) and human_task_role, inserted with Core
executemany. Each bulk instance has one open task and ``closed`` completed ones before
it (the history a real database keeps, with its role rows). Tasks are spread evenly over
six of the department's roles, due dates from ten days ago to thirty days ahead (one in
ten without), priorities from 10 to 90, one task in seven claimed by a colleague and one
in fifty by the measured user (``USER``).
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, func, insert, select, text

from cli.demo import SAMPLES
from engine.db import Database
from engine.models import HumanTask, HumanTaskRole, Instance, TaskState
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

    instance: dict[str, Any]
    task: dict[str, Any]


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
    with flow.db.reading() as session:
        conn = session.connection()
        for instance_id in started:
            instance = conn.execute(select(Instance.__table__).where(Instance.id == instance_id))
            row = dict(instance.mappings().one())
            tasks = conn.execute(
                select(HumanTask.__table__).where(HumanTask.instance_id == instance_id)
            )
            for task in tasks.mappings():
                if task["state"] == TaskState.OPEN:
                    found[task["element_id"]] = Template(row, dict(task))
    return found


def role_templates(found: dict[str, Template]) -> dict[str, tuple[Template, str]]:
    """For each role: a template task and the candidate roles a task of it carries."""
    by_role: dict[str, tuple[Template, str]] = {}
    for template in found.values():
        roles = template.task["candidate_roles"]
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
        tables: dict[str, Table] = {
            "instance": Instance.__table__,  # type: ignore[dict-item]
            "task": HumanTask.__table__,  # type: ignore[dict-item]
            "role": HumanTaskRole.__table__,  # type: ignore[dict-item]
        }
        with self.db.engine.begin() as conn:
            next_instance = (conn.scalar(select(func.max(Instance.id))) or 0) + 1
            next_task = (conn.scalar(select(func.max(HumanTask.id))) or 0) + 1
            for start in range(0, count, CHUNK):
                rows = self._rows(min(CHUNK, count - start), next_instance, next_task)
                conn.execute(insert(tables["instance"]), rows[0])
                conn.execute(insert(tables["task"]), rows[1])
                conn.execute(insert(tables["role"]), rows[2])
                next_instance += len(rows[0])
                next_task += len(rows[1])
            if self.db.is_postgres:  # ids were given: move the sequences past them
                for table in ("instance", "human_task"):
                    conn.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                            f" (SELECT max(id) FROM {table}))"
                        )
                    )
        self.open_tasks += count
        return time.perf_counter() - began

    def _rows(
        self, count: int, first_instance: int, first_task: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        rng, now = self.rng, self.now
        instances: list[dict[str, Any]] = []
        tasks: list[dict[str, Any]] = []
        roles: list[dict[str, Any]] = []
        task_id = first_task
        for n in range(count):
            instance_id = first_instance + n
            self.instances += 1
            role = ROLES[rng.randrange(len(ROLES))]
            template, candidates = self.by_role[role]
            started = now - timedelta(days=rng.uniform(0, 40))
            instance = dict(template.instance)
            instance.update(
                id=instance_id,
                business_key=f"BK-{self.instances:07d}",
                started_at=started,
                updated_at=started,
                started_by=COLLEAGUES[rng.randrange(len(COLLEAGUES))],
            )
            instances.append(instance)
            for step in range(self.closed + 1):
                is_open = step == self.closed
                created = started + timedelta(hours=step * 4 + rng.uniform(0, 4))
                task = dict(template.task)
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
                task.update(
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
                tasks.append(task)
                roles.extend({"task_id": task_id, "role_id": r} for r in candidates.split(","))
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

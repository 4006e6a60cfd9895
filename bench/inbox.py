"""Inbox latency at 10,000 and 100,000 open tasks, SQLite and PostgreSQL.

The database is set up through the engine (schema, shipped files, users), then one real
instance of each shipped process is started, and its instance row and open task row are
the templates of the bulk rows: instance (definition, state, audit head), human_task
(element, name, form, priority, roles) and human_task_role, inserted with Core
executemany. Each bulk instance has one open task and ``--closed`` completed ones before
it (the history a real database keeps, with its role rows). Tasks are spread evenly over
the department's six roles (market_development has no task in the shipped diagrams:
its tasks are confirm_order tasks that order_execution may also take), due dates from ten
days ago to thirty days ahead (one in ten without), priorities from 10 to 90, one task in
seven claimed by a colleague and one in fifty by the measured user, who holds
``--roles`` (finance and risk_compliance: a third of the tasks).

Measured: ``GET /api/v1/tasks?limit=50&...`` through the Flask test client (the whole API
in process: token check, arguments, the engine's inbox, business keys, JSON; no socket,
no gunicorn), ``--samples`` per query after a warm-up, the queries taking turns. The
engine's two statements are timed on their own too (cursor time of the count and of the
page, through ``Tradeflow.inbox``); "rest" is the HTTP p50 less theirs: the token check,
the user's roles, business keys, marshmallow, Flask.

When a target is missed (p95 <= 20 ms at 10,000, <= 50 ms at 100,000), the plans are
shown (EXPLAIN QUERY PLAN / EXPLAIN ANALYZE) and candidate fixes are measured on the
same rows: indexes that give the ORDER BYs (no code change); then also the query changes
of ``variant_inbox`` (EXISTS for IN, the ORDER BY fixed); then also a count capped at
1000. The engine is not changed: the variant query is swapped in for this process only,
and the indexes are dropped again.

    .venv/bin/python bench/inbox.py [--sizes 10000,100000] [--samples 200] [--warmup 20]
        [--sql-samples 30] [--fix-samples 100] [--closed 1] [--roles finance,risk_compliance]
        [--no-postgres] [--no-diagnose] [--sqlite-analyze] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from completions import shipped_files
from flask.testing import FlaskClient
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    Table,
    event,
    exists,
    func,
    insert,
    or_,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from api import create_app
from engine import queues
from engine.db import Database
from engine.models import HumanTask, HumanTaskRole, Instance, TaskState
from engine.tradeflow import Tradeflow
from engine.users import Actor

ROLES = (
    "documents_logistics",
    "risk_compliance",
    "finance",
    "order_execution",
    "manager",
    "market_development",
)
STARTS: dict[str, dict[str, Any]] = {  # one real instance of each, with what it needs
    "credit_check": {"annual_volume": 50_000, "credit_score": 550},  # grade C: approval
    "document_review": {},
    "order_fulfilment": {},
    "payment_collection": {},
}
USER = "ana"
COLLEAGUES = ("ben", "cem", "dora", "emil")
PRIORITIES = (10, 30, 50, 50, 50, 70, 80, 90)
QUERIES = {
    "sort=due": "limit=50&sort=due",
    "sort=priority": "limit=50&sort=priority",
    "overdue=true": "limit=50&sort=due&overdue=true",
}
TARGETS = {10_000: 20.0, 100_000: 50.0}  # p95 ms
PG_DATABASE = "tradeflow_bench_inbox"
CAP = 1000  # a capped count: "1000+" rather than the exact number
PLAN_LINES = 10
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
CHUNK = 5_000


def target_for(size: int) -> float:
    """The p95 target that applies at ``size`` open tasks (the next one up)."""
    for limit, ms in sorted(TARGETS.items()):
        if size <= limit:
            return ms
    return max(TARGETS.values())


# -- rows ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """A real instance with one open task, as the engine wrote them."""

    instance: dict[str, Any]
    task: dict[str, Any]


def templates(flow: Tradeflow) -> dict[str, Template]:
    """Start one instance of each shipped process; element id -> its rows."""
    started = [
        flow.start(key, actor="boss", business_key=f"T-{key}", variables=variables)
        for key, variables in STARTS.items()
    ]
    # one more document_review, a step on: its open task is the review (risk_compliance)
    review = flow.start("document_review", actor="boss", business_key="T-document_review-2")
    [prepare] = flow.tasks_of(review)
    flow.complete(prepare.id, actor="ben", data={"invoice_number": "INV-T-1"})
    started.append(review)
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
    if "confirm_order" in found:
        by_role["market_development"] = (
            found["confirm_order"],
            "market_development,order_execution",
        )
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


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Latency:
    p50: float
    p95: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        return cls(1000 * statistics.median(seconds), 1000 * percentile(seconds, 0.95))


def sample(
    calls: dict[str, Callable[[], object]], samples: int, warmup: int
) -> dict[str, list[float]]:
    """Time each call ``samples`` times after ``warmup`` untimed, the calls taking turns."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(samples):
        for name, call in calls.items():
            began = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - began)
    return times


def inbox_query(name: str) -> queues.InboxQuery:
    args = dict(part.split("=") for part in QUERIES[name].split("&"))
    return queues.InboxQuery(
        sort=args.get("sort", "due"),
        limit=int(args.get("limit", "50")),
        overdue=True if args.get("overdue") == "true" else None,
    )


# -- a variant of the inbox query, for this process only -----------------------------

InboxFunction = Callable[[Session, Actor, queues.InboxQuery, datetime], queues.InboxPage]
ENGINE_INBOX: InboxFunction = queues.inbox


def variant_inbox(rewrite: bool, cap: int | None) -> InboxFunction:
    """engine.queues.inbox with the query changes proposed, for this process only.

    ``rewrite``: the page's role test an EXISTS (a probe of human_task_role's primary key
    per row read, where IN builds the list of every task of the roles, closed ones too,
    first); no ORDER BY term twice (sort=priority gets ``priority DESC`` from SORTS and
    again as the tie-break); and no ``due_at IS NULL`` term under overdue=true, where it
    is always false but keeps the (state, due_at) index from giving the order.
    ``cap``: count at most ``cap`` + 1 rows ("1000+"), with EXISTS, so it stops early.
    Only what this benchmark asks for (sort, limit, offset, overdue); else the engine's."""

    def inbox(
        session: Session, user: Actor, query: queues.InboxQuery, now: datetime
    ) -> queues.InboxPage:
        plain = queues.InboxQuery(
            sort=query.sort, limit=query.limit, offset=query.offset, overdue=query.overdue
        )
        if query != plain or query.overdue is False:
            return ENGINE_INBOX(session, user, query, now)
        task, role = HumanTask, HumanTaskRole
        roles = set(user.roles)
        in_list = task.id.in_(select(role.task_id).where(role.role_id.in_(roles)))
        correlated = exists().where(role.task_id == task.id, role.role_id.in_(roles))

        def where(in_roles: Any) -> Select[Any]:
            stmt = select(task).where(
                task.state == TaskState.OPEN,
                in_roles,
                or_(task.assignee.is_(None), task.assignee == user.name),
            )
            return stmt.where(task.due_at < now) if query.overdue is True else stmt

        if cap is None:
            counted = where(in_list)
        else:
            counted = where(correlated).with_only_columns(task.id).limit(cap + 1)
        total = session.scalar(select(func.count()).select_from(counted.subquery())) or 0
        order: list[Any] = [*queues.SORTS[query.sort], task.priority.desc(), task.id]
        if rewrite:
            if query.sort == "priority":
                order = [task.priority.desc(), task.id]
            elif query.sort == "due" and query.overdue is True:
                order = order[1:]
        page = where(correlated if rewrite else in_list).order_by(*order)
        found = session.scalars(page.limit(query.limit).offset(query.offset))
        return queues.InboxPage(list(found.all()), total)

    return inbox


@contextmanager
def swapped(inbox: InboxFunction) -> Iterator[None]:
    queues.inbox = inbox  # type: ignore[assignment]  # Tradeflow.inbox looks it up each call
    try:
        yield
    finally:
        queues.inbox = ENGINE_INBOX  # type: ignore[assignment]


INDEXES = {  # candidate indexes: the ORDER BYs of queues.SORTS, and the count's columns
    "ix_bench_task_due": "human_task (state, (due_at IS NULL), due_at, priority DESC, id)",
    "ix_bench_task_priority": "human_task (state, priority DESC, id)",
    "ix_bench_task_open": "human_task (state, assignee)",
}


@contextmanager
def candidate_indexes(db: Database) -> Iterator[None]:
    with db.engine.begin() as conn:
        for name, target in INDEXES.items():
            conn.exec_driver_sql(f"CREATE INDEX {name} ON {target}")
    if db.is_postgres:
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "ANALYZE human_task"
            )
    try:
        yield
    finally:
        with db.engine.begin() as conn:
            for name in INDEXES:
                conn.exec_driver_sql(f"DROP INDEX {name}")


# -- one store -----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    store: str
    size: int
    variant: str
    query: str
    http: Latency
    count: Latency  # the engine's count statement, cursor time
    page: Latency  # the engine's page statement, cursor time
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

    def measure(self, size: int, variant: str, samples: int, sql_samples: int) -> list[Row]:
        """HTTP latency of each query, then the engine's statements alone."""
        headers = {"Authorization": f"Bearer {self.token}"}

        def get(query: str) -> Callable[[], object]:
            def run() -> object:
                response = self.client.get(f"/api/v1/tasks?{query}", headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"GET /api/v1/tasks?{query}: {response.status_code}")
                return response.json

            return run

        http = sample({n: get(q) for n, q in QUERIES.items()}, samples, self.args.warmup)
        rows = []
        for name in QUERIES:
            query = inbox_query(name)
            visible = self.flow.inbox(USER, query).total
            with self.timer.timing() as seconds:
                for _ in range(sql_samples):
                    self.flow.inbox(USER, query)
            self.statements[name] = dict(self.timer.last)
            rows.append(
                Row(
                    self.name,
                    size,
                    variant,
                    name,
                    Latency.of(http[name]),
                    Latency.of(seconds["count"]),
                    Latency.of(seconds["page"]),
                    visible,
                )
            )
        return rows

    def explain(self, query: str, kind: str) -> list[str]:
        statement, params = self.statements[query][kind]
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


def show(row: Row, target: float) -> None:
    mark = "" if row.http.p95 <= target else "  MISSED"
    print(
        f"  {row.store:10s} {row.size:>7,d}  {row.variant:26s} {row.query:14s}"
        f" {row.http.p50:7.1f} {row.http.p95:7.1f}   {row.count.p50:6.1f} {row.page.p50:6.1f}"
        f" {row.http.p50 - row.count.p50 - row.page.p50:6.1f}  {row.visible:>6,d}{mark}",
        flush=True,
    )


HEADER = (
    "  store         open  variant                    query           HTTP ms         SQL ms p50"
    "   rest    total\n" + " " * 69 + "p50     p95   count   page    p50"
)


def diagnose(store: Store, size: int, rows: list[Row]) -> list[Row]:
    """Plans of what missed, then candidate fixes measured on the same rows."""
    target = target_for(size)
    missed = [r.query for r in rows if r.http.p95 > target]
    print(f"  -- {store.name}, {size:,} open: {', '.join(missed)} over {target:.0f} ms; plans:")
    for query in missed:
        for kind in ("count", "page"):
            print(f"     {query} {kind}:")
            for line in store.explain(query, kind)[:PLAN_LINES]:
                print(f"       {line}")
    samples = store.args.fix_samples
    found: list[Row] = []
    variants: list[tuple[str, InboxFunction]] = [
        ("indexes", ENGINE_INBOX),
        ("indexes+query", variant_inbox(True, None)),
        (f"indexes+query+count<={CAP}", variant_inbox(True, CAP)),
    ]
    print(f"  -- candidate fixes ({samples} samples each); indexes:")
    for name, target_ in INDEXES.items():
        print(f"       CREATE INDEX {name} ON {target_}")
    with candidate_indexes(store.flow.db):
        for label, inbox in variants:
            with swapped(inbox):
                measured = store.measure(size, label, samples, store.args.sql_samples)
            for row in measured:
                show(row, target)
            found.extend(measured)
        print(f"  -- plans with {variants[-1][0]}:")
        for query in missed:
            for kind in ("count", "page"):
                print(f"     {query} {kind}:")
                for line in store.explain(query, kind)[:PLAN_LINES]:
                    print(f"       {line}")
    return found


def open_store(name: str, url: str, args: argparse.Namespace) -> Store:
    flow = Tradeflow(Database(url))
    flow.upgrade()
    flow.deploy(shipped_files(), actor="bench")
    user_roles = frozenset(args.roles.split(","))
    _, token = flow.add_user(USER, sorted(user_roles))
    flow.add_user("boss", list(ROLES))
    for colleague in COLLEAGUES:
        flow.add_user(colleague, list(ROLES))
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
            measured = store.measure(size, "as is", args.samples, args.sql_samples)
            for row in measured:
                show(row, target_for(size))
            rows.extend(measured)
            if args.diagnose and any(r.http.p95 > target_for(size) for r in measured):
                rows.extend(diagnose(store, size, measured))
    finally:
        store.flow.db.dispose()
    return rows


# -- PostgreSQL ----------------------------------------------------------------------


@contextmanager
def pg_database(url: str) -> Iterator[str | None]:
    """A fresh database beside ``url``'s, dropped afterwards; None if nobody answers."""
    try:
        admin = psycopg.connect(url, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        print(f"PostgreSQL at {url} does not answer ({exc.__class__.__name__}): skipped")
        yield None
        return
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{PG_DATABASE}"')
        try:
            yield make_url(url).set(database=PG_DATABASE).render_as_string(hide_password=False)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')


def summary(rows: list[Row]) -> None:
    print("summary: HTTP p95 ms of GET /api/v1/tasks?limit=50 (target), worst query first")
    keys = list(dict.fromkeys((r.store, r.size, r.variant) for r in rows))
    for store, size, variant in keys:
        group = sorted(
            (r for r in rows if (r.store, r.size, r.variant) == (store, size, variant)),
            key=lambda r: -r.http.p95,
        )
        target = target_for(size)
        verdict = "met" if all(r.http.p95 <= target for r in group) else "NOT MET"
        print(
            f"  {store:10s} {size:>7,d}  {variant:26s} "
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
    parser.add_argument(
        "--fix-samples", type=int, default=100, help="per query for each candidate fix (100)"
    )
    parser.add_argument("--closed", type=int, default=1, help="completed tasks per open one (1)")
    parser.add_argument(
        "--roles", default="finance,risk_compliance", help="the measured user's roles"
    )
    parser.add_argument("--no-postgres", dest="postgres", action="store_false")
    parser.add_argument("--no-diagnose", dest="diagnose", action="store_false")
    parser.add_argument(
        "--sqlite-analyze", action="store_true", help="run ANALYZE on SQLite after each fill"
    )
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    args.sizes = sorted(int(n) for n in args.sizes.split(",") if n.strip())
    if not args.sizes or args.sizes[0] < 1 or args.closed < 0:
        parser.error("--sizes must be positive, --closed not negative")
    if min(args.samples, args.sql_samples, args.fix_samples) < 2:
        parser.error("--samples, --sql-samples and --fix-samples: 2 at least")
    if not set(args.roles.split(",")) <= set(ROLES):
        parser.error(f"--roles: from {', '.join(ROLES)}")

    began = time.perf_counter()
    print(
        f"inbox latency, GET /api/v1/tasks?limit=50 as {USER} ({args.roles}), Flask test"
        f" client, {args.samples} samples per query after {args.warmup} warm-up"
    )
    print(HEADER, flush=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="tradeflow-inbox-") as tmp:
        rows += run_store("sqlite", f"sqlite:///{Path(tmp) / 'inbox.db'}", args)
    if args.postgres:
        with pg_database(args.pg_url) as url:
            if url is not None:
                rows += run_store("postgresql", url, args)
    summary(rows)
    print(f"  ({time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The pending writes of a unit of work: every row a command adds or changes goes through
one ``Writes``, which decides when and how it reaches the database.

Most of a command's writes answer nothing the command needs (a changed task, a role
row, a cancelled task, the saved instance, its audit events, its case facts), so they
are held here and sent together when the command settles (``flush``): on PostgreSQL in
one round trip (psycopg's pipeline), on SQLite one by one in process. A new task needs
its id at once (the workflow keeps it); on PostgreSQL that id is taken ahead, in the
round trip that read the task a completion acts on, so its row too can wait for the
flush; otherwise it is inserted at once.

Domain modules say what they write (``add_task``, ``save_task``, ``cancel_task``...);
nothing outside storage knows about dialects, pipelines or ids taken ahead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, insert, update

from engine.storage import state_parts, store, subscriptions
from engine.storage.models import TaskState
from engine.storage.prepared import Prepared, driver_of
from engine.storage.records import AuditEvent, CaseFacts
from engine.storage.store import InstanceRow, TaskFacts, TaskRow

_EVENTS: Table = AuditEvent.__table__  # type: ignore[assignment]
_FACTS: Table = CaseFacts.__table__  # type: ignore[assignment]
# through the driver (prepared.py): a tenth of the ORM's path, a third of Core's
INSERT_EVENT = Prepared(
    insert(_EVENTS).values({c.name: bindparam(c.name) for c in _EVENTS.columns if c.name != "id"})
)
_CASE_KEYS = ("instance_id", "definition_key", "business_key", "started_at")
_INSERT_CASE = Prepared(insert(_FACTS).values({n: bindparam(n) for n in _CASE_KEYS}))
# (columns set if empty, columns overwritten) -> its UPDATE, built on first use
_CASE_UPDATES: dict[tuple[tuple[str, ...], tuple[str, ...]], Prepared] = {}


@dataclass(frozen=True)
class CaseChange:
    """What one audit event does to its instance's case facts: columns set only if still
    empty (the first occurrence counts), and columns overwritten (the latest counts)."""

    instance_id: int
    first: Mapping[str, Any]
    latest: Mapping[str, Any]


class Writes:
    """What the unit of work on one connection will write."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._postgres = conn.dialect.name == "postgresql"
        self._ahead: list[int] = []  # task ids taken ahead, not yet used
        self._held: dict[int, TaskRow] = {}  # task rows this unit made or will save
        self._insert: list[TaskRow] = []  # made with ids taken ahead: inserted at flush
        self._save: set[int] = set()  # held rows to write back, as they then stand
        self._roles: list[tuple[int, str]] = []  # (task id, role id)
        self._cancelled: list[tuple[int, datetime]] = []  # rows not held, cancelled if open
        self._instances: dict[int, InstanceRow] = {}
        self._parts: list[tuple[int, dict[str, str], list[str]]] = []
        self._events: list[dict[str, Any]] = []
        self._cases: list[dict[str, Any]] = []  # new case facts rows
        self._case_changes: list[CaseChange] = []
        # instance id -> (business key, message names it came to wait for in this unit):
        # a message kept meanwhile by a transaction this one could not see is looked for
        # again once the unit has committed (runtime/unit.py)
        self.new_waits: dict[int, tuple[str | None, list[str]]] = {}

    # reads that prepare writes

    def task_facts(self, task_id: int, actor: str, creates_task: bool = False) -> TaskFacts | None:
        """The task a command acts on, its instance locked, and the actor's roles and past
        work (store.task_facts). ``creates_task``: the command will likely create a task
        (a completion), so an id for it is taken ahead in the same round trip."""
        facts = store.task_facts(self.conn, task_id, actor, take_id=creates_task)
        if facts is not None and facts.spare_task_id is not None:
            self._ahead.append(facts.spare_task_id)
        return facts

    # tasks

    def add_task(self, row: TaskRow, roles: Iterable[str]) -> int:
        """A new task row with its roles: its id set on ``row`` now, the row written now
        or (its id taken ahead) with the flush, as it then stands."""
        if self._ahead:
            row.id = self._ahead.pop()
            self._insert.append(row)
        else:
            store.insert_task(self.conn, row)
        self._held[row.id] = row
        self.add_roles(row.id, roles)
        return row.id

    def add_roles(self, task_id: int, roles: Iterable[str]) -> None:
        self._roles += [(task_id, role) for role in roles]

    def save_task(self, row: TaskRow) -> None:
        """Write the row back as it stands at the flush (its changeable columns)."""
        held = self._held.setdefault(row.id, row)
        if held is not row:
            raise ValueError(f"task {row.id} is held here as another row object")
        if not any(r is row for r in self._insert):
            self._save.add(row.id)

    def cancel_task(self, task_id: int, now: datetime) -> None:
        """Cancel a task if it is still open: a row this unit holds is changed in place
        (made in this very command, it may not be in the database yet)."""
        held = self._held.get(task_id)
        if held is None:
            self._cancelled.append((task_id, now))
            return
        if held.state == TaskState.OPEN:
            held.state, held.ended_at = TaskState.CANCELLED, now
            self.save_task(held)

    def subscribe(
        self, instance: InstanceRow, names: list[str], keys: Mapping[str, str] | None = None
    ) -> None:
        """Keep the instance's message subscriptions equal to ``names``, and its
        correlation keys (subscriptions.py) equal to ``keys`` while it waits."""
        added = subscriptions.replace_subscriptions(
            self.conn, instance.id, instance.business_key, names, keys or {}
        )
        if added:
            key, before = self.new_waits.get(instance.id, (instance.business_key, []))
            self.new_waits[instance.id] = (key, sorted({*before, *added}))

    # instances

    def add_instance(self, row: InstanceRow) -> int:
        """A new instance row, written now: its id is what everything else refers to."""
        return store.insert_instance(self.conn, row)

    def save_instance(self, row: InstanceRow) -> None:
        self._instances[row.id] = row

    def save_parts(self, instance_id: int, new: Mapping[str, str], gone: Iterable[str]) -> None:
        """The parts of the instance's saved state it had not stored, and those its
        state no longer refers to (state_parts.py)."""
        if new or gone:
            self._parts.append((instance_id, dict(new), list(gone)))

    def postpone(self, instance_id: int, until: datetime) -> None:
        """Move an instance's next wake-up, and nothing else of its row: written now."""
        store.postpone_instance(self.conn, instance_id, until)

    # what happened

    def add_events(self, rows: Iterable[dict[str, Any]]) -> None:
        """Audit event rows (engine/audit/trail.py makes them, hashed and chained)."""
        self._events += rows

    def add_case(self, instance_id: int, definition_key: str, business_key: str | None,
                 started_at: datetime) -> None:  # fmt: skip
        self._cases.append(
            {
                "instance_id": instance_id,
                "definition_key": definition_key,
                "business_key": business_key,
                "started_at": started_at,
            }
        )

    def change_case(self, change: CaseChange) -> None:
        if change.first or change.latest:
            self._case_changes.append(change)

    # the flush

    def flush(self) -> None:
        """Send what is pending, in the order the rows refer to each other; an error
        raises here (on PostgreSQL at the end of the pipeline at the latest)."""
        if not self._pending():
            self._held.clear()
            return
        with driver_of(self.conn).pipeline() if self._postgres else nullcontext():
            new, self._insert = self._insert, []
            store.insert_tasks_with_ids(self.conn, new)
            roles, self._roles = self._roles, []
            store.add_task_roles(self.conn, roles)
            saved, self._save = self._save, set()
            for task_id in sorted(saved):
                store.save_task(self.conn, self._held[task_id])
            self._held.clear()
            # after the saves: a cancel touches only rows still open, whatever came before
            cancelled, self._cancelled = self._cancelled, []
            for task_id, now in cancelled:
                store.cancel_task(self.conn, task_id, now)
            instances, self._instances = self._instances, {}
            for instance in instances.values():
                store.save_instance(self.conn, instance)
            saved_parts, self._parts = self._parts, []
            for instance_id, new_parts, gone in saved_parts:
                state_parts.write_parts(self.conn, instance_id, new_parts, gone)
            events, self._events = self._events, []
            if events:
                INSERT_EVENT.run_many(self.conn, events)
            cases, self._cases = self._cases, []
            for case in cases:
                _INSERT_CASE.run(self.conn, case)
            changes, self._case_changes = self._case_changes, []
            for change in changes:
                _case_update(change).run(self.conn, _case_params(change))

    def discard(self) -> None:
        """Forget what is pending (the part of the unit that made it was rolled back);
        ids taken ahead are kept: they are still free."""
        self._held.clear()
        self._insert, self._roles, self._cancelled, self._save = [], [], [], set()
        self._instances, self._events, self._cases, self._case_changes = {}, [], [], []
        self._parts = []

    def _pending(self) -> bool:
        return bool(
            self._insert
            or self._roles
            or self._cancelled
            or self._save
            or self._instances
            or self._parts
            or self._events
            or self._cases
            or self._case_changes
        )


def _case_update(change: CaseChange) -> Prepared:
    key = (tuple(change.first), tuple(change.latest))
    found = _CASE_UPDATES.get(key)
    if found is None:
        values: dict[str, Any] = {
            n: func.coalesce(_FACTS.c[n], bindparam(f"b_{n}", type_=_FACTS.c[n].type))
            for n in change.first
        }
        values.update({n: bindparam(f"b_{n}") for n in change.latest})
        statement = update(_FACTS).where(_FACTS.c.instance_id == bindparam("b_instance_id"))
        found = _CASE_UPDATES[key] = Prepared(statement.values(values))
    return found


def _case_params(change: CaseChange) -> dict[str, Any]:
    params = {f"b_{n}": v for n, v in (*change.first.items(), *change.latest.items())}
    params["b_instance_id"] = change.instance_id
    return params

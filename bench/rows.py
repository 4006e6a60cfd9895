"""Bulk rows for the fills, made of the storage layer's own row types and written by its
own insert functions, so that what a row holds is said once, in the engine.

An instance is engine/storage/store.py's ``InstanceRow``, a task its ``TaskRow``, an audit event
the row engine/audit/trail.py's ``AuditTrail`` appends (chained and hashed as the unit of work
does). Tasks and their roles go in through ``store.insert_tasks_with_ids`` and
``store.add_task_roles``; instances and events, which the engine writes one command at a
time, through a statement built from the model's table (every column the rows carry), run
by the driver's executemany (``engine.storage.Prepared``). Nothing here names a column.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Connection, Table, bindparam, insert, text
from sqlalchemy.orm import Session

from engine import audit
from engine.audit import GENESIS, AuditTrail, EventKind
from engine.storage import HumanTask, Instance, InstanceRow, Prepared, TaskRow, store

INSTANCES: Table = Instance.__table__  # type: ignore[assignment]
TASKS: Table = HumanTask.__table__  # type: ignore[assignment]
CHUNK = 10_000
_INSERTS: dict[tuple[str, tuple[str, ...]], Prepared] = {}
_NO_DATABASE = Session()  # what a seeded trail is given: it asks it nothing


def instance_row(instance: Instance) -> InstanceRow:
    """The store's row of an instance the ORM read."""
    return InstanceRow(**{f.name: getattr(instance, f.name) for f in fields(InstanceRow)})


def task_row(task: HumanTask | TaskRow) -> TaskRow:
    """A fresh store row of a task (read by the ORM or the engine), its columns only."""
    return TaskRow(**{name: getattr(task, name) for name in store.TASK_COLUMNS})


class Trail:
    """One instance's audit stream, from its first event: a seeded AuditTrail, whose
    rows are collected for a bulk insert rather than written by the trail.

    (``AuditTrail.write`` would also record the case facts event by event; a fill leaves
    them to ``facts.rebuild``, as a database that existed before them gets them.)"""

    def __init__(self, instance_id: int, events: list[dict[str, Any]]) -> None:
        self.instance_id = instance_id
        self.stream = audit.instance_stream(instance_id)
        self.trail = AuditTrail(_NO_DATABASE)
        self.trail.seed(self.stream, 0, GENESIS)
        self.events = events

    def add(
        self,
        kind: EventKind,
        at: datetime,
        actor: str,
        element: str | None,
        data: dict[str, Any],
        role: str | None = None,
    ) -> None:
        self.events.append(
            self.trail.append(
                self.stream,
                kind,
                at=at,
                actor=actor,
                instance_id=self.instance_id,
                element_id=element,
                element_name=element,
                role=role,
                data=data,
            )
        )

    @property
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last event: what the instance row keeps."""
        return self.trail.head(self.stream)


def _chunks(rows: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(rows), CHUNK):
        yield rows[start : start + CHUNK]


def insert_many(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """``rows`` (dicts of the same keys, all columns of ``table``) in one executemany a
    chunk, through a statement built from the table and kept."""
    if not rows:
        return
    keys = tuple(rows[0])
    prepared = _INSERTS.get((table.name, keys))
    if prepared is None:
        columns: dict[str, BindParameter[Any]] = {
            c.name: bindparam(c.name) for c in table.columns if c.name in keys
        }
        missing = set(keys) - set(columns)
        if missing:
            raise ValueError(f"{table.name} has no columns {sorted(missing)}")
        prepared = _INSERTS[(table.name, keys)] = Prepared(insert(table).values(columns))
    for chunk in _chunks(rows):
        prepared.run_many(conn, chunk)


def write(
    conn: Connection,
    instances: Sequence[InstanceRow],
    tasks: Sequence[TaskRow],
    roles: Sequence[tuple[int, str]],
    events: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Instances, their tasks (ids given), the tasks' roles and audit events, in bulk."""
    insert_many(conn, INSTANCES, [vars(row) for row in instances])
    for chunk in _chunks(tasks):
        store.insert_tasks_with_ids(conn, list(chunk))
    for chunk in _chunks(roles):
        store.add_task_roles(conn, list(chunk))
    insert_many(conn, audit.TABLE, events)


def move_sequences(conn: Connection) -> None:
    """PostgreSQL: the ids of instances and tasks were given, so move their sequences
    past them, as the next command's own insert needs."""
    if conn.dialect.name != "postgresql":
        return
    for table in (INSTANCES, TASKS):
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'),"
                f" (SELECT max(id) FROM {table.name}))"
            )
        )

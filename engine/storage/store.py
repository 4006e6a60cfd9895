"""The unit of work's SQL: pre-built Core statements and plain rows for the hot path.

They run on the transaction's connection, straight through the driver (``Prepared``:
compiled once, SQLAlchemy's own type conversions); the ORM's execute path adds a third
to SQLAlchemy's, and SQLAlchemy's several times the driver's.

Every command reads and writes the same few rows (the instance, its open tasks, the
acting user). The ORM's identity map and flush machinery cost several times the SQL
itself there, so the hot path uses these statements, built once, and small dataclasses.
Reads outside a command (inboxes, history, admin) use the ORM models as usual.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import (
    BindParameter,
    Connection,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
    update,
)

from engine.storage.accounts import (
    User,
    UserRole,
)
from engine.storage.models import (
    Form,
    HumanTask,
    HumanTaskRole,
    Instance,
    InstanceStatus,
    MessageSubscription,
    TaskQueues,
    TaskState,
)
from engine.storage.prepared import Prepared, run_together

_I: Table = Instance.__table__  # type: ignore[assignment]
_T: Table = HumanTask.__table__  # type: ignore[assignment]
_R: Table = HumanTaskRole.__table__  # type: ignore[assignment]
_S: Table = MessageSubscription.__table__  # type: ignore[assignment]
_F: Table = Form.__table__  # type: ignore[assignment]


@dataclass
class InstanceRow:
    id: int
    definition_id: int
    business_key: str | None
    status: InstanceStatus
    state: str
    started_at: datetime
    started_by: str
    updated_at: datetime
    ended_at: datetime | None
    next_wakeup_at: datetime | None
    error: str | None
    revision: int
    audit_seq: int
    audit_hash: str


_INSTANCE_COLUMNS = [f.name for f in fields(InstanceRow)]
_SELECT_INSTANCE = select(*(_I.c[n] for n in _INSTANCE_COLUMNS)).where(_I.c.id == bindparam("id"))
_LOCK_INSTANCE = Prepared(_SELECT_INSTANCE.with_for_update())  # SQLite: a plain SELECT
_READ_INSTANCE = Prepared(_SELECT_INSTANCE)
_MUTABLE_INSTANCE = [
    n
    for n in _INSTANCE_COLUMNS
    if n not in ("id", "definition_id", "started_at", "started_by", "business_key")
]
_SAVE_INSTANCE = Prepared(
    update(_I)
    .where(_I.c.id == bindparam("b_id"))
    .values({n: bindparam(f"b_{n}") for n in _MUTABLE_INSTANCE})
)


def lock_instance(conn: Connection, instance_id: int) -> InstanceRow | None:
    """The instance row, locked (FOR UPDATE on PostgreSQL; SQLite has no such clause, and
    its writer lock is held anyway)."""
    found = _LOCK_INSTANCE.first(conn, {"id": instance_id})
    return InstanceRow(**found) if found is not None else None


def read_instance(conn: Connection, instance_id: int) -> InstanceRow | None:
    """The instance row, for reading: not locked, not to be saved."""
    found = _READ_INSTANCE.first(conn, {"id": instance_id})
    return InstanceRow(**found) if found is not None else None


_CLAIM_DUE_MANY = (
    select(*(_I.c[n] for n in _INSTANCE_COLUMNS))
    .where(_I.c.status == InstanceStatus.RUNNING, _I.c.next_wakeup_at <= bindparam("now"))
    .order_by(_I.c.next_wakeup_at)
    .limit(bindparam("size"))
    .with_for_update(skip_locked=True)
)


def claim_due_many(conn: Connection, now: datetime, size: int) -> list[InstanceRow]:
    """Up to ``size`` due running instances, soonest first, locked: on PostgreSQL another
    process skips them and takes the next; SQLite's writer lock keeps everybody out."""
    rows = conn.execute(_CLAIM_DUE_MANY, {"now": now, "size": size})
    return [InstanceRow(**r._asdict()) for r in rows]


def insert_instance(conn: Connection, row: InstanceRow) -> int:
    values = {n: getattr(row, n) for n in _INSTANCE_COLUMNS if n != "id"}
    new_id: int = conn.execute(insert(_I).values(values).returning(_I.c.id)).scalar_one()
    row.id = new_id
    return new_id


_POSTPONE_INSTANCE = Prepared(
    update(_I).where(_I.c.id == bindparam("b_id")).values(next_wakeup_at=bindparam("b_until"))
)


def postpone_instance(conn: Connection, instance_id: int, until: datetime) -> None:
    _POSTPONE_INSTANCE.run(conn, {"b_id": instance_id, "b_until": until})


def save_instance(conn: Connection, row: InstanceRow) -> None:
    params = {f"b_{n}": getattr(row, n) for n in _MUTABLE_INSTANCE}
    params["b_id"] = row.id
    _SAVE_INSTANCE.run(conn, params)


@dataclass
class TaskRow(TaskQueues):
    id: int
    instance_id: int
    spiff_task_id: str
    element_id: str
    name: str | None
    state: TaskState
    assignee: str | None
    priority: int
    form_key: str | None
    created_at: datetime
    claimed_at: datetime | None
    ended_at: datetime | None
    completed_by: str | None
    due_at: datetime | None
    candidate_roles: str
    breached_at: datetime | None = None
    form_id: int | None = None  # the latest version of its form, read along with the row
    business_key: str | None = None  # its instance's, for answers; not a column
    # after a completion: the instance's open tasks, for answers; not a column
    next_tasks: list[TaskRow] | None = None
    # open and past its due time when it was read (queues.stamp_overdue; None: not
    # stamped); not a column
    overdue: bool | None = None


_NOT_COLUMNS = ("form_id", "business_key", "next_tasks", "overdue")
TASK_COLUMNS = tuple(f.name for f in fields(TaskRow) if f.name not in _NOT_COLUMNS)
_LATEST_FORM_OF_TASK = (
    select(_F.c.id)
    .where(_F.c.key == _T.c.form_key)
    .order_by(_F.c.version.desc())
    .limit(1)
    .correlate(_T)
    .scalar_subquery()
)
_SELECT_TASK = select(
    *(_T.c[n] for n in TASK_COLUMNS), _LATEST_FORM_OF_TASK.label("form_id")
).where(_T.c.id == bindparam("id"))
_MUTABLE_TASK = [
    "state",
    "assignee",
    "claimed_at",
    "ended_at",
    "completed_by",
    "due_at",
    "breached_at",
    "candidate_roles",
]
_SAVE_TASK = Prepared(
    update(_T)
    .where(_T.c.id == bindparam("b_id"))
    .values({n: bindparam(f"b_{n}") for n in _MUTABLE_TASK})
)
_INSERT_TASK = Prepared(
    insert(_T).values({n: bindparam(n) for n in TASK_COLUMNS if n != "id"}).returning(_T.c.id)
)
_INSERT_TASK_WITH_ID = Prepared(insert(_T).values({n: bindparam(n) for n in TASK_COLUMNS}))
# PostgreSQL: a task id taken ahead, so the new task's row can go with the last writes
_NEXT_TASK_ID = Prepared(select(func.nextval(func.pg_get_serial_sequence("human_task", "id"))))
_INSERT_ROLE = Prepared(
    insert(_R).values(task_id=bindparam("task_id"), role_id=bindparam("role_id"))
)
_DONE_BY = (
    select(_T.c.element_id)
    .where(
        _T.c.instance_id == bindparam("instance_id"),
        _T.c.element_id.in_(bindparam("elements", expanding=True)),
        _T.c.completed_by == bindparam("user"),
    )
    .limit(1)
)


def task_row(found: object) -> TaskRow:
    """A TaskRow from a result row of its columns (and, as some reads add, business_key)."""
    return TaskRow(**found._asdict())  # type: ignore[attr-defined]


@dataclass(frozen=True)
class TaskFacts:
    """What a command on a task needs, read in one statement."""

    task: TaskRow
    instance: InstanceRow
    actor_exists: bool
    actor_roles: frozenset[str]
    actor_done: frozenset[str]  # elements the actor completed in this instance
    # PostgreSQL: an id for the task the command is likely to create (writes.py)
    spare_task_id: int | None = None


_U: Table = User.__table__  # type: ignore[assignment]
_UR: Table = UserRole.__table__  # type: ignore[assignment]
_T2 = _T.alias("done")
_ACTOR: BindParameter[str] = bindparam("actor", type_=String())
# each element once: an instance that loops has the actor's work there many times over
_DONE = (
    select(_T2.c.element_id)
    .where(_T2.c.instance_id == _T.c.instance_id, _T2.c.completed_by == _ACTOR)
    .distinct()
    .correlate(_T)
    .subquery("actor_done")
)
_TASK_FACTS = (
    select(
        *(_T.c[n] for n in TASK_COLUMNS),
        _LATEST_FORM_OF_TASK.label("form_id"),
        *(_I.c[n].label(f"i_{n}") for n in _INSTANCE_COLUMNS),
        select(_U.c.id).where(_U.c.name == _ACTOR).scalar_subquery().label("actor_id"),
        select(func.aggregate_strings(_UR.c.role_id, ","))
        .select_from(_UR.join(_U, _U.c.id == _UR.c.user_id))
        .where(_U.c.name == _ACTOR)
        .scalar_subquery()
        .label("actor_roles"),
        select(func.aggregate_strings(_DONE.c.element_id, ","))
        .select_from(_DONE)
        .scalar_subquery()
        .label("actor_done"),
    )
    .select_from(_T.join(_I, _I.c.id == _T.c.instance_id))
    .where(_T.c.id == bindparam("id"))
)
_READ_TASK_FACTS = Prepared(_TASK_FACTS)
_LOCK_INSTANCE_OF_TASK = Prepared(
    select(_I.c.id)
    .where(_I.c.id == select(_T.c.instance_id).where(_T.c.id == bindparam("id")).scalar_subquery())
    .with_for_update()
)


def task_facts(
    conn: Connection, task_id: int, actor: str, take_id: bool = False
) -> TaskFacts | None:
    """A task, its instance (locked, as lock_instance) and the actor's roles and past work
    in that instance: one statement where three would do.

    PostgreSQL: the instance is locked first, then the facts read, both in one round trip.
    Each statement of a READ COMMITTED transaction reads its own snapshot, so the facts
    hold everything committed before the lock was granted: the task as the command that
    held the lock left it, and the actor's work in the instance (maker-checker). Read with
    the lock, in one statement, the task would be the row as it was before the wait. With
    ``take_id``, a task id is taken ahead in the same round trip (a completion mostly
    creates the next task; writes.py uses it). SQLite takes no id ahead: it has no
    round trips to save."""
    params = {"id": task_id, "actor": actor}
    spare = None
    if conn.dialect.name == "postgresql":
        statements = [(_LOCK_INSTANCE_OF_TASK, params), (_READ_TASK_FACTS, params)]
        if take_id:
            statements.append((_NEXT_TASK_ID, {}))
        _, rows, *taken = run_together(conn, statements)
        if taken:
            [(spare,)] = taken[0]
    else:
        rows = _READ_TASK_FACTS.run(conn, params)
    if not rows:
        return None
    values = _READ_TASK_FACTS.record(conn.dialect, rows[0])
    instance = InstanceRow(**{n: values.pop(f"i_{n}") for n in _INSTANCE_COLUMNS})
    actor_id = values.pop("actor_id")
    roles, done = values.pop("actor_roles"), values.pop("actor_done")
    return TaskFacts(
        task=TaskRow(**values),
        instance=instance,
        actor_exists=actor_id is not None,
        actor_roles=frozenset(roles.split(",")) if roles else frozenset(),
        actor_done=frozenset(done.split(",")) if done else frozenset(),
        spare_task_id=spare,
    )


_READ_TASK = Prepared(_SELECT_TASK)


def task(conn: Connection, task_id: int) -> TaskRow | None:
    found = _READ_TASK.first(conn, {"id": task_id})
    return TaskRow(**found) if found is not None else None


_SELECT_TASKS = select(*(_T.c[n] for n in TASK_COLUMNS)).where(
    _T.c.id.in_(bindparam("ids", expanding=True))
)


def tasks(conn: Connection, task_ids: list[int]) -> list[TaskRow]:
    return [task_row(found) for found in conn.execute(_SELECT_TASKS, {"ids": task_ids})]


_SELECT_OPEN_TASKS = (
    select(*(_T.c[n] for n in TASK_COLUMNS))
    .where(_T.c.instance_id == bindparam("instance_id"), _T.c.state == TaskState.OPEN)
    .order_by(_T.c.id)
)


_SELECT_TASKS_OF = (
    select(*(_T.c[n] for n in TASK_COLUMNS), _LATEST_FORM_OF_TASK.label("form_id"))
    .where(_T.c.instance_id == bindparam("instance_id"))
    .order_by(_T.c.id)
)


def tasks_of(conn: Connection, instance_id: int) -> list[TaskRow]:
    """Every task row of the instance, oldest first (for reading)."""
    return [
        task_row(found) for found in conn.execute(_SELECT_TASKS_OF, {"instance_id": instance_id})
    ]


def open_tasks_of(conn: Connection, instance_id: int) -> list[TaskRow]:
    """The instance's open task rows, oldest first."""
    rows = conn.execute(_SELECT_OPEN_TASKS, {"instance_id": instance_id})
    return [task_row(found) for found in rows]


_CANCEL_TASK = Prepared(
    update(_T)
    .where(_T.c.id == bindparam("b_id"), _T.c.state == TaskState.OPEN)
    .values(state=TaskState.CANCELLED, ended_at=bindparam("b_ended_at"))
)


def cancel_task(conn: Connection, task_id: int, now: datetime) -> None:
    _CANCEL_TASK.run(conn, {"b_id": task_id, "b_ended_at": now})


def save_task(conn: Connection, row: TaskRow) -> None:
    params = {f"b_{n}": getattr(row, n) for n in _MUTABLE_TASK}
    params["b_id"] = row.id
    _SAVE_TASK.run(conn, params)


def insert_task(conn: Connection, row: TaskRow) -> int:
    """The task's row (its id set on ``row``); its roles' rows are the caller's to add
    (add_task_roles), with the unit's other writes that answer nothing."""
    values = {n: getattr(row, n) for n in TASK_COLUMNS if n != "id"}
    [(new_id,)] = _INSERT_TASK.run(conn, values)
    row.id = int(new_id)
    return row.id


def insert_tasks_with_ids(conn: Connection, rows: list[TaskRow]) -> None:
    """Task rows whose ids were taken ahead (TaskFacts.spare_task_id)."""
    if rows:
        _INSERT_TASK_WITH_ID.run_many(
            conn, [{n: getattr(r, n) for n in TASK_COLUMNS} for r in rows]
        )


def add_task_roles(conn: Connection, roles: list[tuple[int, str]]) -> None:
    """Rows of human_task_role: (task id, role id) each."""
    if roles:
        _INSERT_ROLE.run_many(conn, [{"task_id": t, "role_id": r} for t, r in roles])


def completed_one_of(
    conn: Connection, instance_id: int, elements: tuple[str, ...], user: str
) -> str | None:
    """Which of ``elements`` (if any) ``user`` completed in the instance."""
    params = {"instance_id": instance_id, "elements": list(elements), "user": user}
    found: str | None = conn.execute(_DONE_BY, params).scalar()
    return found


_STATE_OF = Prepared(select(_I.c.state).where(_I.c.id == bindparam("id")))


def state_of(conn: Connection, instance_id: int) -> str | None:
    """The instance's saved state as it now stands."""
    found = _STATE_OF.first(conn, {"id": instance_id})
    return None if found is None else str(found["state"])

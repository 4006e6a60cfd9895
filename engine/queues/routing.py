"""Role queues: READY user tasks become human_task rows; the inbox reads them."""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from SpiffWorkflow.task import Task
from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy.orm import Session

from engine.audit import EventKind
from engine.clock import as_utc
from engine.errors import Invalid
from engine.modeling import messages_of, role_id
from engine.people import Actor
from engine.runtime import Frontier, scan
from engine.storage import HumanTask, HumanTaskRole, Instance, TaskRow, TaskState, store

if TYPE_CHECKING:
    from engine.runtime import Work


ROW = "tradeflow_task"  # internal_data key on a READY user task: its human_task row id
DUE = "tradeflow_due"  # ... its SLA due time (ISO 8601), so wake-ups need no query
BREACHED = "tradeflow_breached"  # ... set once its SLA breach is recorded


def reconcile(work: Work, frontier: Frontier | None = None) -> None:
    """Make the human_task rows and message subscriptions match the workflow."""
    frontier = frontier or scan(work.workflow)
    _reconcile_tasks(work, frontier.ready_manual)
    if work.definition.messages:  # else nothing here (or in what it calls) awaits a message
        names = sorted({d.name for t in frontier.waiting for d in messages_of(t.task_spec)})
        store.replace_subscriptions(work.conn, work.instance.id, work.instance.business_key, names)


def _reconcile_tasks(work: Work, ready: list[Task]) -> None:
    ready_ids = {str(t.id) for t in ready}
    for spiff_id, (row_id, element_id, name) in list(work.open_rows.items()):
        if spiff_id in ready_ids:
            continue
        del work.open_rows[spiff_id]
        # a row this command read, or made (its insert may still wait for the last writes)
        closed = work.tasks.get(row_id) or work.created.get(row_id)
        if closed is not None and closed.state != TaskState.OPEN:
            continue  # this command completed it
        # gone without being completed: an interrupting timer or a cancel took it away
        if closed is not None:
            closed = work.task(closed)  # saved with the unit's last writes
            closed.state, closed.ended_at = TaskState.CANCELLED, work.now
        else:
            store.cancel_task(work.conn, row_id, work.now)
        work.audit(
            EventKind.TASK_CANCELLED,
            element_id=element_id,
            element_name=name,
            data={"task_id": row_id},
        )
    for task in ready:
        spiff_id = str(task.id)
        if spiff_id in work.open_rows:
            continue
        spec = task.task_spec
        rule = work.definition.rule(task.workflow.spec.name, spec.bpmn_id)
        roles = list(rule.roles) if rule else ([role_id(spec.lane)] if spec.lane else [])
        due = work.calendar.add(work.now, rule.sla) if rule and rule.sla else None
        row = TaskRow(
            id=0,
            instance_id=work.instance.id,
            spiff_task_id=spiff_id,
            element_id=spec.bpmn_id,
            name=spec.bpmn_name,
            state=TaskState.OPEN,
            assignee=None,
            priority=rule.priority if rule else 50,
            form_key=rule.form_key if rule else None,
            created_at=work.now,
            claimed_at=None,
            ended_at=None,
            completed_by=None,
            due_at=due,
            candidate_roles=",".join(roles),
        )
        if work.spare_task_ids:  # its id taken ahead: the row goes with the last writes
            row.id = work.spare_task_ids.pop()
            work.new_tasks.append(row)
        else:
            store.insert_task(work.conn, row)
        work.new_roles += [(row.id, role) for role in roles]
        work.created[row.id] = row
        task.internal_data[ROW] = row.id
        if due is not None:
            task.internal_data[DUE] = due.isoformat()
        work.open_rows[spiff_id] = (row.id, row.element_id, row.name)
        work.audit(
            EventKind.TASK_CREATED,
            element_id=row.element_id,
            element_name=row.name,
            role=row.candidate_roles or None,
            data={"task_id": row.id, "roles": roles},
        )


def breach_overdue(work: Work, ready: list[Task]) -> None:
    """Record each open task whose SLA has passed, once: mark the row, audit
    ``sla_breached``, and add the ``escalateTo`` roles to its queues."""
    for task in ready:
        due = task.internal_data.get(DUE)
        if due is None or task.internal_data.get(BREACHED) or ROW not in task.internal_data:
            continue
        if datetime.fromisoformat(due) > work.now:
            continue
        row_id = task.internal_data[ROW]
        row = work.tasks.get(row_id) or work.created.get(row_id) or store.task(work.conn, row_id)
        if row is None or row.state != TaskState.OPEN:
            continue
        row = work.task(row)
        task.internal_data[BREACHED] = True
        row.breached_at = work.now
        rule = work.definition.rule(task.workflow.spec.name, task.task_spec.bpmn_id)
        added = [r for r in (rule.escalate_to if rule else ()) if r not in row.role_ids]
        if added:
            row.candidate_roles = ",".join([*row.role_ids, *added])
            work.new_roles += [(row.id, role) for role in added]
        work.audit(
            EventKind.SLA_BREACHED,
            element_id=row.element_id,
            element_name=row.name,
            role=row.candidate_roles or None,
            data={"task_id": row.id, "due": due, "escalated_to": added},
        )


def next_due(ready: list[Task]) -> datetime | None:
    """The earliest SLA due time not yet recorded as breached."""
    found = [
        datetime.fromisoformat(t.internal_data[DUE])
        for t in ready
        if DUE in t.internal_data and not t.internal_data.get(BREACHED)
    ]
    return min(found) if found else None


def is_overdue(task: HumanTask | TaskRow, now: datetime) -> bool:
    """Open and past its due time (what the inbox's overdue filter selects)."""
    return task.state == TaskState.OPEN and task.due_at is not None and as_utc(task.due_at) <= now


class ClaimFilter(enum.StrEnum):
    ANY = "any"
    CLAIMED = "claimed"  # assigned to the user
    UNCLAIMED = "unclaimed"


_T = HumanTask.__table__.c
_I = Instance.__table__.c
_R = HumanTaskRole.__table__.c
SORTS = {
    "due": (_T.due_at.is_(None), _T.due_at),
    "priority": (_T.priority.desc(),),
    "created": (_T.created_at,),
}


@dataclass(frozen=True)
class InboxQuery:
    role: str | None = None
    claim: ClaimFilter = ClaimFilter.ANY
    business_key: str | None = None
    instance_id: int | None = None
    overdue: bool | None = None
    sort: str = "due"
    limit: int = 50
    offset: int = 0
    count: bool = True  # the API asks only when the client does


@dataclass(frozen=True)
class InboxPage:
    tasks: list[TaskRow]  # each with .business_key set
    total: int | None
    more: bool = False


@dataclass(frozen=True)
class _Inbox:
    page: Select[Any]
    count: Select[Any]


@functools.cache
def _inbox_statements(
    claim: ClaimFilter, by_key: bool, by_instance: bool, overdue: bool | None, sort: str
) -> _Inbox:
    """The inbox's statements for one combination of filters, built once: the values go
    in as parameters, so SQLAlchemy finds the statement compiled (building and keying a
    new one cost half an inbox answer)."""
    in_roles = (
        select(_R.task_id)
        .where(_R.task_id == _T.id, _R.role_id.in_(bindparam("roles", expanding=True)))
        .exists()
    )
    stmt = (
        select(*(_T[n] for n in store.TASK_COLUMNS), _I.business_key)
        .join_from(HumanTask.__table__, Instance.__table__, _I.id == _T.instance_id)
        .where(_T.state == TaskState.OPEN, in_roles)
    )
    mine = _T.assignee == bindparam("user")
    if claim == ClaimFilter.CLAIMED:
        stmt = stmt.where(mine)
    elif claim == ClaimFilter.UNCLAIMED:
        stmt = stmt.where(_T.assignee.is_(None))
    else:
        stmt = stmt.where(or_(_T.assignee.is_(None), mine))
    if by_key:
        stmt = stmt.where(_I.business_key == bindparam("business_key"))
    if by_instance:
        stmt = stmt.where(_T.instance_id == bindparam("instance_id"))
    order: list[Any] = list(SORTS[sort])
    if overdue is True:
        # the order keeps the IS NULL term, matching the inbox index: no sort, a LIMIT stops it
        stmt = stmt.where(_T.due_at < bindparam("now"))
    elif overdue is False:
        stmt = stmt.where(or_(_T.due_at.is_(None), _T.due_at >= bindparam("now")))
    if sort != "priority":
        order.append(_T.priority.desc())
    order.append(_T.id)
    return _Inbox(
        page=stmt.order_by(*order).limit(bindparam("limit")).offset(bindparam("offset")),
        count=select(func.count()).select_from(stmt.subquery()),
    )


def inbox(session: Session, user: Actor, query: InboxQuery, now: datetime) -> InboxPage:
    """Open tasks the user may work: in their roles, unassigned or assigned to them.

    Each task carries its instance's business key. ``total`` is counted only when the
    query asks (a count walks every match; a page stops at ``limit``); ``more`` says
    whether another page follows either way."""
    if query.sort not in SORTS:
        raise Invalid(f"sort must be one of {', '.join(SORTS)}", sort=query.sort)
    if not 1 <= query.limit <= 500 or query.offset < 0:
        raise Invalid("limit must be 1..500 and offset >= 0")
    roles = set(user.roles)
    if query.role is not None:
        roles &= {query.role}
    statements = _inbox_statements(
        ClaimFilter(query.claim),
        query.business_key is not None,
        query.instance_id is not None,
        query.overdue,
        query.sort,
    )
    params = {
        "roles": sorted(roles),
        "user": user.name,
        "business_key": query.business_key,
        "instance_id": query.instance_id,
        "now": now,
        "limit": query.limit + 1,
        "offset": query.offset,
    }
    conn = session.connection()
    total = None
    if query.count:
        total = conn.execute(statements.count, params).scalar() or 0
    rows = conn.execute(statements.page, params).all()
    tasks = [store.task_row(row) for row in rows[: query.limit]]
    return InboxPage(tasks, total, more=len(rows) > query.limit)


@dataclass(frozen=True)
class QueueCount:
    role: str
    open: int
    claimed: int
    overdue: int


def counts(session: Session, roles: set[str] | None, now: datetime) -> list[QueueCount]:
    """Open, claimed and overdue tasks per role queue (``roles`` None: every role)."""
    query = (
        select(
            HumanTaskRole.role_id,
            func.count(),
            func.count(HumanTask.assignee),
            func.count(HumanTask.id).filter(HumanTask.due_at < now),
        )
        .join(HumanTask, HumanTask.id == HumanTaskRole.task_id)
        .where(HumanTask.state == TaskState.OPEN)
        .group_by(HumanTaskRole.role_id)
    )
    if roles is not None:
        query = query.where(HumanTaskRole.role_id.in_(roles))
    found = {row[0]: QueueCount(*row) for row in session.execute(query)}
    for role in roles or ():
        found.setdefault(role, QueueCount(role, 0, 0, 0))
    return [found[r] for r in sorted(found)]

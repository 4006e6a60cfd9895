"""The inbox, the read side of the role queues: the open tasks a user may work, page by
page, and the count of open, claimed and overdue tasks per queue. Routing (routing.py)
writes the rows it reads."""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy.orm import Session

from engine.clock import as_utc
from engine.errors import Invalid
from engine.people import CANDIDATE, Actor
from engine.storage import HumanTask, HumanTaskRole, Instance, TaskRow, TaskState, store


def is_overdue(task: HumanTask | TaskRow, now: datetime) -> bool:
    """Open and past its due time (what the inbox's overdue filter selects)."""
    return task.state == TaskState.OPEN and task.due_at is not None and as_utc(task.due_at) <= now


def stamp_overdue(tasks: list[TaskRow], now: datetime) -> list[TaskRow]:
    """Set each row's ``overdue`` as of ``now`` (what answers and pages show)."""
    for task in tasks:
        task.overdue = is_overdue(task, now)
        stamp_overdue(task.next_tasks or [], now)
    return tasks


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
    roles = set(user.queues)
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
    tasks = stamp_overdue([store.task_row(row) for row in rows[: query.limit]], now)
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
    else:  # role queues only: a queue of one user is no role's
        query = query.where(~HumanTaskRole.role_id.startswith(CANDIDATE, autoescape=True))
    found = {row[0]: QueueCount(*row) for row in session.execute(query)}
    for role in roles or ():
        found.setdefault(role, QueueCount(role, 0, 0, 0))
    return [found[r] for r in sorted(found)]

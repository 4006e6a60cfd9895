"""Role queues: READY user tasks become human_task rows; the inbox reads them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from SpiffWorkflow.util.task import TaskState as SpiffState
from sqlalchemy import Select, and_, delete, func, or_, select
from sqlalchemy.orm import Session

from engine.audit import EventKind
from engine.diagrams import role_id
from engine.errors import Invalid
from engine.events import messages_of
from engine.models import (
    DefinitionTask,
    HumanTask,
    HumanTaskRole,
    Instance,
    MessageSubscription,
    TaskState,
    User,
)

if TYPE_CHECKING:
    from engine.runtime import Work


def reconcile(work: Work) -> None:
    """Make the human_task rows and message subscriptions match the workflow."""
    _reconcile_tasks(work)
    _reconcile_subscriptions(work)


def _reconcile_tasks(work: Work) -> None:
    ready = {str(t.id): t for t in work.workflow.get_tasks(state=SpiffState.READY, manual=True)}
    open_rows = work.session.scalars(
        select(HumanTask).where(
            HumanTask.instance_id == work.instance.id, HumanTask.state == TaskState.OPEN
        )
    ).all()
    known = {row.spiff_task_id for row in open_rows}
    for row in open_rows:
        if row.spiff_task_id not in ready:  # e.g. an interrupting timer took it away
            row.state = TaskState.CANCELLED
            row.ended_at = work.now
            work.audit(
                EventKind.TASK_CANCELLED,
                element_id=row.element_id,
                element_name=row.name,
                data={"task_id": row.id},
            )
    rules = {(t.process_id, t.element_id): t for t in work.instance.definition.tasks}
    # Embedded subprocesses run under their own spec name; their element ids are unique.
    by_element = {t.element_id: t for t in work.instance.definition.tasks}
    for spiff_id, task in ready.items():
        if spiff_id in known:
            continue
        spec = task.task_spec
        rule = rules.get((task.workflow.spec.name, spec.bpmn_id)) or by_element.get(spec.bpmn_id)
        roles = list(rule.roles) if rule else ([role_id(spec.lane)] if spec.lane else [])
        row = HumanTask(
            instance_id=work.instance.id,
            spiff_task_id=spiff_id,
            element_id=spec.bpmn_id,
            name=spec.bpmn_name,
            state=TaskState.OPEN,
            created_at=work.now,
            priority=rule.priority if rule else 50,
            form_key=rule.form_key if rule else None,
            roles=[HumanTaskRole(role_id=r) for r in roles],
        )
        work.session.add(row)
        work.session.flush()
        work.audit(
            EventKind.TASK_CREATED,
            element_id=row.element_id,
            element_name=row.name,
            role=",".join(roles) or None,
            data={"task_id": row.id, "roles": roles},
        )


def _reconcile_subscriptions(work: Work) -> None:
    waiting = sorted(
        {
            d.name
            for t in work.workflow.event_manager.tasks.values()
            for d in messages_of(t.task_spec)
        }
    )
    stored = work.session.scalars(
        select(MessageSubscription).where(MessageSubscription.instance_id == work.instance.id)
    ).all()
    if sorted(s.name for s in stored) == waiting:
        return
    work.session.execute(
        delete(MessageSubscription).where(MessageSubscription.instance_id == work.instance.id)
    )
    for name in waiting:
        work.session.add(
            MessageSubscription(
                instance_id=work.instance.id, name=name, business_key=work.instance.business_key
            )
        )
    work.session.flush()


class ClaimFilter(enum.StrEnum):
    ANY = "any"
    CLAIMED = "claimed"  # assigned to the user
    UNCLAIMED = "unclaimed"


SORTS = {
    "due": (HumanTask.due_at.is_(None), HumanTask.due_at),
    "priority": (HumanTask.priority.desc(),),
    "created": (HumanTask.created_at,),
}


@dataclass(frozen=True)
class InboxQuery:
    role: str | None = None
    claim: ClaimFilter = ClaimFilter.ANY
    business_key: str | None = None
    overdue: bool | None = None
    sort: str = "due"
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class InboxPage:
    tasks: list[HumanTask]
    total: int


def inbox(session: Session, user: User, query: InboxQuery, now: datetime) -> InboxPage:
    """Open tasks the user may work: in their roles, unassigned or assigned to them."""
    if query.sort not in SORTS:
        raise Invalid(f"sort must be one of {', '.join(SORTS)}", sort=query.sort)
    if not 1 <= query.limit <= 500 or query.offset < 0:
        raise Invalid("limit must be 1..500 and offset >= 0")
    roles = user.role_ids
    if query.role is not None:
        roles &= {query.role}
    stmt: Select[HumanTask] = select(HumanTask).where(
        HumanTask.state == TaskState.OPEN,
        HumanTask.id.in_(select(HumanTaskRole.task_id).where(HumanTaskRole.role_id.in_(roles))),
    )
    mine = HumanTask.assignee == user.name
    if query.claim == ClaimFilter.CLAIMED:
        stmt = stmt.where(mine)
    elif query.claim == ClaimFilter.UNCLAIMED:
        stmt = stmt.where(HumanTask.assignee.is_(None))
    else:
        stmt = stmt.where(or_(HumanTask.assignee.is_(None), mine))
    if query.business_key is not None:
        stmt = stmt.join(Instance, Instance.id == HumanTask.instance_id).where(
            Instance.business_key == query.business_key
        )
    if query.overdue is True:
        stmt = stmt.where(HumanTask.due_at < now)
    elif query.overdue is False:
        stmt = stmt.where(or_(HumanTask.due_at.is_(None), HumanTask.due_at >= now))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    order = (*SORTS[query.sort], HumanTask.priority.desc(), HumanTask.id)
    tasks = session.scalars(stmt.order_by(*order).limit(query.limit).offset(query.offset)).all()
    return InboxPage(list(tasks), total)


def rule_for(session: Session, task: HumanTask, instance: Instance) -> DefinitionTask | None:
    return session.scalars(
        select(DefinitionTask).where(
            and_(
                DefinitionTask.definition_id == instance.definition_id,
                DefinitionTask.element_id == task.element_id,
            )
        )
    ).first()

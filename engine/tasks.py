"""Commands on human tasks: claim, unclaim, delegate, complete.

Each runs inside the instance's unit of work, so a task can be completed once: the
second of two racing completions waits for the row lock, then finds the task closed.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any
from uuid import UUID

from SpiffWorkflow.util.task import TaskState as SpiffState
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import users
from engine.audit import EventKind
from engine.errors import (
    NotInRole,
    SeparationOfDuty,
    TaskAlreadyClaimed,
    TaskNotFound,
    TaskNotOpen,
)
from engine.models import DefinitionTask, HumanTask, TaskState, User
from engine.runtime import Runtime, Work, changes, variables


def _instance_of(runtime: Runtime, task_id: int) -> int:
    """The task's instance; a closed task is refused before its instance is locked."""
    with runtime.db.reading() as session:
        row = session.execute(
            select(HumanTask.instance_id, HumanTask.state).where(HumanTask.id == task_id)
        ).first()
    if row is None:
        raise TaskNotFound(f"no task {task_id}", task=task_id)
    if row.state != TaskState.OPEN:
        raise TaskNotOpen(f"task {task_id} is already {row.state.value}", task=task_id)
    return int(row.instance_id)


def _locked(runtime: Runtime, task_id: int, actor: str) -> AbstractContextManager[Work]:
    """The task's instance's unit of work, refusing a task that closed while we waited."""

    def still_open(session: Session) -> None:
        _open(session, task_id)

    return runtime.command(_instance_of(runtime, task_id), actor, still_open)


def _open_task(work: Work, task_id: int) -> HumanTask:
    return _open(work.session, task_id)


def _open(session: Session, task_id: int) -> HumanTask:
    task = session.get(HumanTask, task_id, populate_existing=True)
    if task is None:
        raise TaskNotFound(f"no task {task_id}", task=task_id)
    if task.state != TaskState.OPEN:
        raise TaskNotOpen(f"task {task_id} is already {task.state.value}", task=task_id)
    return task


def _require_role(user: User, task: HumanTask) -> None:
    if not user.role_ids & set(task.role_ids):
        raise NotInRole(
            f"{user.name} holds none of the roles of task {task.id} ({', '.join(task.role_ids)})",
            task=task.id,
            roles=task.role_ids,
        )


def _separate_from(work: Work, task: HumanTask) -> list[str]:
    rule = work.session.scalars(
        select(DefinitionTask).where(
            DefinitionTask.definition_id == work.instance.definition_id,
            DefinitionTask.element_id == task.element_id,
        )
    ).first()
    return list(rule.separate_from) if rule else []


def _check_separation(work: Work, user: User, task: HumanTask) -> None:
    """Maker-checker: whoever completed a named element may not take this one."""
    others = _separate_from(work, task)
    if not others:
        return
    done = work.session.scalars(
        select(HumanTask.element_id).where(
            HumanTask.instance_id == task.instance_id,
            HumanTask.element_id.in_(others),
            HumanTask.completed_by == user.name,
        )
    ).first()
    if done is not None:
        raise SeparationOfDuty(
            f"{user.name} completed '{done}' in this instance and may not also do "
            f"'{task.element_id}'",
            task=task.id,
            element=done,
        )


def _user(session: Session, name: str) -> User:
    return users.require(session, name)


def _claim(work: Work, user: User, task: HumanTask) -> None:
    _require_role(user, task)
    if task.assignee == user.name:
        return
    if task.assignee is not None:
        raise TaskAlreadyClaimed(f"task {task.id} is claimed by {task.assignee}", task=task.id)
    _check_separation(work, user, task)
    task.assignee = user.name
    task.claimed_at = work.now
    work.audit(
        EventKind.TASK_CLAIMED,
        element_id=task.element_id,
        element_name=task.name,
        role=",".join(task.role_ids),
        data={"task_id": task.id, "assignee": user.name},
    )


def claim(runtime: Runtime, task_id: int, actor: str) -> None:
    with _locked(runtime, task_id, actor) as work:
        _claim(work, _user(work.session, actor), _open_task(work, task_id))


def unclaim(runtime: Runtime, task_id: int, actor: str) -> None:
    with _locked(runtime, task_id, actor) as work:
        user = _user(work.session, actor)
        task = _open_task(work, task_id)
        if task.assignee != user.name and not user.is_admin:
            raise NotInRole(f"task {task_id} is not claimed by {actor}", task=task_id)
        previous, task.assignee, task.claimed_at = task.assignee, None, None
        work.audit(
            EventKind.TASK_UNCLAIMED,
            element_id=task.element_id,
            element_name=task.name,
            data={"task_id": task.id, "previous_assignee": previous},
        )


def delegate(runtime: Runtime, task_id: int, actor: str, to: str) -> None:
    """Hand a task to another user who holds one of its roles."""
    with _locked(runtime, task_id, actor) as work:
        user = _user(work.session, actor)
        target = _user(work.session, to)
        task = _open_task(work, task_id)
        if task.assignee not in (None, user.name) and not user.is_admin:
            raise TaskAlreadyClaimed(f"task {task_id} is claimed by {task.assignee}", task=task_id)
        if task.assignee is None:
            _require_role(user, task)
        _require_role(target, task)
        _check_separation(work, target, task)
        previous, task.assignee, task.claimed_at = task.assignee, target.name, work.now
        work.audit(
            EventKind.TASK_DELEGATED,
            element_id=task.element_id,
            element_name=task.name,
            role=",".join(task.role_ids),
            data={"task_id": task.id, "from": previous, "to": target.name},
        )


def complete(runtime: Runtime, task_id: int, actor: str, data: dict[str, Any]) -> None:
    """Complete a task with the submitted data; an unclaimed task is claimed first."""
    from engine.forms_check import check_submission

    with _locked(runtime, task_id, actor) as work:
        user = _user(work.session, actor)
        task = _open_task(work, task_id)
        _claim(work, user, task)
        _check_separation(work, user, task)
        data = check_submission(work.session, task.form_key, data)
        spiff_task = work.workflow.get_task_from_id(UUID(task.spiff_task_id))
        if spiff_task is None or spiff_task.state != SpiffState.READY:
            raise TaskNotOpen(f"task {task_id} is no longer ready", task=task_id)

        def step() -> None:
            spiff_task.data.update(data)
            spiff_task.run()

        work.run_engine(step)
        task.state = TaskState.COMPLETED
        task.completed_by = user.name
        task.ended_at = work.now
        work.audit(
            EventKind.TASK_COMPLETED,
            element_id=task.element_id,
            element_name=task.name,
            role=",".join(task.role_ids),
            data={
                "task_id": task.id,
                "submitted": data,
                "changes": changes(work.before, variables(work.workflow)),
            },
        )

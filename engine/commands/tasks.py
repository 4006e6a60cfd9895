"""Commands on human tasks: claim, unclaim, delegate, complete.

Each runs inside the instance's unit of work, so a task can be completed once: the
second of two racing completions waits for the row lock, then finds the task closed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from SpiffWorkflow.util.task import TaskState as SpiffState
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from engine import queues
from engine.audit import EventKind
from engine.errors import (
    DelegationRefused,
    NotInRole,
    SeparationOfDuty,
    TaskAlreadyClaimed,
    TaskNotFound,
    TaskNotOpen,
    UserNotFound,
)
from engine.execution import variables
from engine.modeling import check_submission
from engine.people import Actor, identity
from engine.runtime import Runtime, Work, repeats, stepping
from engine.storage import Instance, TaskRow, TaskState, faults, store


@contextmanager
def _on_task(
    runtime: Runtime,
    task_id: int,
    actor: str,
    name: str,
    creates_task: bool = False,
    once: repeats.Once | None = None,
) -> Iterator[tuple[Work, TaskRow, Actor]]:
    """The unit of work of the task's instance, the task as read under its lock, and who
    acts: their roles and what they did in this instance (flags are not read here).
    ``creates_task``: the command will likely create the next task (a completion).
    ``once``: the request under its sender's key (repeats.py). The task row, as the
    command leaves it, is the unit's answer (with the open tasks, if it asked for them)."""
    with runtime.unit(name, once) as unit:
        facts = unit.writes.task_facts(task_id, actor, creates_task)
        if facts is None:
            raise TaskNotFound(f"no task {task_id}", task=task_id)
        if facts.task.state != TaskState.OPEN:
            raise TaskNotOpen(f"task {task_id} is already {facts.task.state.value}", task=task_id)
        if not facts.actor_exists:
            raise UserNotFound(f"no user '{actor}'", user=actor)
        with unit.command(facts.instance, actor) as work:
            user = Actor(actor, facts.actor_roles, done=facts.actor_done)
            row = work.task(facts.task)
            row.business_key = work.instance.business_key
            yield work, row, user
        if work.report_open:
            row.next_tasks = work.open_after
        unit.answer(queues.stamp_overdue([row], work.now)[0])


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """{name: [before, after]} for every variable that changed (None when absent)."""
    keys = (before.keys() | after.keys()) - {"data_objects"}
    return {k: [before.get(k), after.get(k)] for k in sorted(keys) if before.get(k) != after.get(k)}


def _require_role(user: Actor, task: TaskRow) -> None:
    if not user.queues & set(task.role_ids):
        raise NotInRole(
            f"{user.name} holds none of the roles of task {task.id} ({', '.join(task.roles_only)})",
            task=task.id,
            roles=task.roles_only,
        )


def _check_separation(work: Work, user: Actor, task: TaskRow) -> None:
    """Maker-checker: whoever completed a named element may not take this one."""
    rule = work.definition.rule_for_element(task.element_id)
    if rule is None or not rule.separate_from:
        return
    if user.done is not None:
        done = next((e for e in rule.separate_from if e in user.done), None)
    else:
        done = store.completed_one_of(work.conn, task.instance_id, rule.separate_from, user.name)
    if done is not None:
        raise SeparationOfDuty(
            f"{user.name} completed '{done}' in this instance and may not also do "
            f"'{task.element_id}'",
            task=task.id,
            element=done,
        )


def _claim(work: Work, user: Actor, task: TaskRow) -> None:
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
        role=task.audit_role,
        data={"task_id": task.id, "assignee": user.name},
    )


def claim(runtime: Runtime, task_id: int, actor: str) -> TaskRow:
    with _on_task(runtime, task_id, actor, "claim") as (work, task, user):
        _claim(work, user, task)
    return task


def unclaim(runtime: Runtime, task_id: int, actor: str) -> TaskRow:
    with _on_task(runtime, task_id, actor, "unclaim") as (work, task, _):
        user = identity(work.session, actor)  # the admin flag decides
        if not user.is_admin:  # outside the task's roles: refused, and told nothing of it
            _require_role(user, task)
        if task.assignee is None:
            raise TaskNotOpen(f"task {task_id} is not claimed", task=task_id)
        if task.assignee != user.name and not user.is_admin:
            raise TaskAlreadyClaimed(f"task {task_id} is claimed by {task.assignee}", task=task_id)
        previous, task.assignee, task.claimed_at = task.assignee, None, None
        work.audit(
            EventKind.TASK_UNCLAIMED,
            element_id=task.element_id,
            element_name=task.name,
            data={"task_id": task.id, "previous_assignee": previous},
        )
    return task


def delegate(runtime: Runtime, task_id: int, actor: str, to: str) -> TaskRow:
    """Hand a task to another user who holds one of its roles."""
    with _on_task(runtime, task_id, actor, "delegate") as (work, task, _):
        user = identity(work.session, actor)  # the admin flag decides
        if not user.is_admin:  # outside the task's roles: refused, and told nothing of it
            _require_role(user, task)
        if task.assignee not in (None, user.name) and not user.is_admin:
            raise TaskAlreadyClaimed(f"task {task_id} is claimed by {task.assignee}", task=task_id)
        target = _delegate_target(work, task, to)
        _check_separation(work, target, task)
        previous, task.assignee, task.claimed_at = task.assignee, target.name, work.now
        work.audit(
            EventKind.TASK_DELEGATED,
            element_id=task.element_id,
            element_name=task.name,
            role=task.audit_role,
            data={"task_id": task.id, "from": previous, "to": target.name},
        )
    return task


def _delegate_target(work: Work, task: TaskRow, name: str) -> Actor:
    """Who takes the task. An unknown name and a user outside the task's roles get one
    answer, word for word: no caller learns from it which names exist."""
    try:
        target: Actor | None = identity(work.session, name, enabled=True)
    except UserNotFound:
        target = None
    if target is None or not target.queues & set(task.role_ids):
        message = (
            f"'{name}' can't take task {task.id}: no user of that name holds one of its "
            f"roles ({', '.join(task.role_ids)})"
        )
        raise DelegationRefused(message, task=task.id, errors={"user": [message]})
    return target


def complete(
    runtime: Runtime,
    task_id: int,
    actor: str,
    data: dict[str, Any],
    once: Callable[[tuple[Any, ...]], repeats.Once | None] = lambda asked: None,
) -> TaskRow:
    """Complete a task with the submitted data; an unclaimed task is claimed first.

    The answer carries the instance's open tasks once the engine has moved on
    (``next_tasks``): a client goes on to the next step without asking the inbox; it is
    made in the unit of work, so a completion that committed always has one. ``once``:
    the request under its sender's key, given what it asks (repeats.py): a repeat raises
    ``AnsweredBefore`` and changes nothing."""
    request = once(("complete", task_id, data))
    try:
        return _complete(runtime, task_id, actor, data, request)
    except IntegrityError as exc:
        if request is None or not faults.violates(exc, repeats.KEY_CONSTRAINT):
            raise
        # the same key sent twice at once: the other committed first, this finds its answer
        return _complete(runtime, task_id, actor, data, request)


def _complete(
    runtime: Runtime, task_id: int, actor: str, data: dict[str, Any], request: repeats.Once | None
) -> TaskRow:
    with _on_task(runtime, task_id, actor, "complete", True, request) as (work, task, user):
        work.report_open = True
        if task.assignee == user.name:
            _require_role(user, task)
            _check_separation(work, user, task)  # claimed earlier; the rule still holds
        else:
            _claim(work, user, task)
        data = check_submission(work.session, task.form_key, task.form_id, data)
        before = variables(work.workflow)  # a new dict; Spiff replaces values, never edits them
        spiff_task = work.workflow.get_task_from_id(UUID(task.spiff_task_id))
        if spiff_task is None or spiff_task.state != SpiffState.READY:
            raise TaskNotOpen(f"task {task_id} is no longer ready", task=task_id)
        # what the form opened with, so the trail shows which values this person
        # confirmed rather than typed (earlier events say who set them)
        rule = work.definition.rule_for_element(task.element_id)
        started = form_start(rule.form_inputs if rule else (), spiff_task.data)

        def step() -> None:
            spiff_task.data.update(data)
            spiff_task.run()

        stepping.run(work, step)
        task.state = TaskState.COMPLETED
        task.completed_by = user.name
        task.ended_at = work.now
        work.audit(
            EventKind.TASK_COMPLETED,
            element_id=task.element_id,
            element_name=task.name,
            role=task.audit_role,
            data={
                "task_id": task.id,
                "submitted": data,
                "changes": changes(before, variables(work.workflow)),
                **({"started_from": started} if started else {}),
            },
        )
    return task


def form_start(form_inputs: tuple[str, ...], data: dict[str, Any]) -> dict[str, Any]:
    """The values a form starts from, out of its task's data: the variables its task lists
    in ``formInputs`` that have one."""
    return {k: data[k] for k in form_inputs if data.get(k) is not None}


def read(runtime: Runtime, task_id: int) -> TaskRow:
    """A task row, with its instance's business key, for reading."""
    with runtime.db.reading() as session:
        row = store.task(session.connection(), task_id)
        if row is None:
            raise TaskNotFound(f"no task {task_id}", task=task_id)
        row.business_key = session.scalar(
            select(Instance.business_key).where(Instance.id == row.instance_id)
        )
    return row


def starting_data(runtime: Runtime, task_id: int) -> dict[str, Any]:
    """The values a task's form starts from: only the variables its diagram lists in the
    task's ``formInputs``. Every other field starts empty, so no start variable, message
    or earlier round can tick a reviewer's box or put words in their comment."""
    with runtime.db.reading() as session:
        row = store.task(session.connection(), task_id)
        if row is None:
            raise TaskNotFound(f"no task {task_id}", task=task_id)
        instance = session.get_one(Instance, row.instance_id)
        rule = runtime.definitions.get(session, instance.definition_id).rule_for_element(
            row.element_id
        )
        if rule is None or not rule.form_inputs:
            return {}
        workflow = runtime.load(session, instance)
    # a closed task may be gone from the task tree (engine/execution/compaction.py): its data went
    # with it; what it submitted is in the audit trail
    spiff_id = UUID(row.spiff_task_id)
    data: dict[str, Any] = {}
    for process in (workflow, *workflow.subprocesses.values()):
        spiff_task = process.tasks.get(spiff_id)
        if spiff_task is not None:
            data = spiff_task.data
            break
    return form_start(rule.form_inputs, data)

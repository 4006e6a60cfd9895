"""Starting, cancelling and waking process instances."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.defaults import StartEvent
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState as SpiffState
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, joinedload

from engine import queues
from engine.audit import GENESIS, EventKind
from engine.errors import BusinessKeyTaken, FormInvalid, InstanceNotFound, ProcessFailed
from engine.execution import SAFE_ENGINE, variables
from engine.modeling import check_names, definitions, definitions_of, form_fields, waits_for_timer
from engine.people import Actor
from engine.runtime import Runtime, Unit, Work, stepping
from engine.storage import (
    Definition,
    HumanTask,
    HumanTaskRole,
    Instance,
    InstanceRow,
    InstanceStatus,
    TaskRow,
    locks,
    store,
)

_LONG_AGO = "1970-01-01T00:00:00+00:00"
MAX_BUSINESS_KEY = 255


def start(
    runtime: Runtime,
    key: str,
    *,
    actor: str,
    business_key: str | None = None,
    variables: dict[str, Any] | None = None,
    version: int | None = None,
) -> int:
    """Start an instance of a definition (latest version unless given); returns its id."""
    variables = dict(variables or {})
    check_names(variables)
    if business_key is not None and not 0 < len(business_key) <= MAX_BUSINESS_KEY:
        raise FormInvalid(f"business key must be 1..{MAX_BUSINESS_KEY} characters")
    with runtime.unit("start") as unit:
        found = definitions.find(unit.session, key, version)
        if business_key is not None and found.messages:
            _claim_business_key(runtime, unit.session, found.key, found.messages, business_key)
        if variables:
            _check_not_decided_later(runtime, unit.session, found.id, variables)
        work = start_in(unit, found.id, actor, business_key, variables)
    return work.instance.id


def _check_not_decided_later(
    runtime: Runtime, session: Session, definition_id: int, variables: dict[str, Any]
) -> None:
    """A start may not set a variable that a user task of the process decides: a field of
    its form that the task does not list in ``formInputs``. Else an inquiry could start
    with the compliance review's ``sanctions_clear`` already true."""
    rules = runtime.definitions.get(session, definition_id).rules.values()
    fields = form_fields(session, (r.form_key for r in rules if r.form_key))
    decided = {
        name: rule.element_id
        for rule in rules
        if rule.form_key
        for name in fields.get(rule.form_key, frozenset()) - set(rule.form_inputs)
    }
    taken = sorted(name for name in variables if name in decided)
    if taken:
        raise FormInvalid(
            f"a start may not set {', '.join(taken)}: decided at a later step",
            errors={
                "variables": {
                    name: [f"decided at step '{decided[name]}' (a field of its form)"]
                    for name in taken
                }
            },
        )


def _claim_business_key(
    runtime: Runtime, session: Session, key: str, messages: list[str], business_key: str
) -> None:
    """Refuse a second running instance with this business key among the processes
    that catch any of the same messages (this one's versions, and others: the order's
    payment is caught by the whole order and by a collection on its own): messages find
    their instance by it. Starts with the same business key take turns here."""
    locks.queue_writers(session, f"business-key:{business_key}")
    running = session.execute(
        select(Instance.id, Definition.key, Definition.messages)
        .join(Definition, Definition.id == Instance.definition_id)
        .where(Instance.business_key == business_key, Instance.status == InstanceStatus.RUNNING)
    ).all()
    shared = set(messages)
    for _, other, caught in running:
        both = sorted(shared & set(caught or ()))
        if other == key or both:
            why = "" if other == key else f" (both catch {', '.join(both)})"
            raise BusinessKeyTaken(
                f"a running '{other}' already has business key "
                f"'{business_key}'{why}: messages find an instance by it, so it must be "
                "unique while the instance runs",
                business_key=business_key,
            )


def start_in(
    unit: Unit,
    definition_id: int,
    actor: str,
    business_key: str | None,
    variables: dict[str, Any],
    timer: str | None = None,
) -> Work:
    """Start an instance in the caller's unit. A start event that waits for a timer
    fires at once: starting is what its timer was for (``timer``: the scheduler's start
    timer that went off, recorded in the audit trail)."""
    with _new_instance(unit, definition_id, actor, business_key, variables, timer) as work:
        workflow = work.workflow
        stepping.run(work)
        if _fire_start_timers(workflow):
            stepping.run(work, lambda: (workflow.refresh_timers(), workflow.refresh_timers()))
    return work


def start_failed(unit: Unit, definition_id: int, error: str, *, actor: str, timer: str) -> int:
    """A round of a start timer that could not run, kept as a failed instance with the
    reason (its incident: what an operator looks at), in the caller's unit."""
    with _new_instance(unit, definition_id, actor, None, {}, timer) as work:
        work.audit(EventKind.INSTANCE_FAILED, data={"error": error})
        work.instance.status, work.instance.error = InstanceStatus.FAILED, error
    return work.instance.id


@contextmanager
def _new_instance(
    unit: Unit,
    definition_id: int,
    actor: str,
    business_key: str | None,
    variables: dict[str, Any],
    timer: str | None,
) -> Iterator[Work]:
    """The new instance's command, its start audited; the caller runs it."""
    runtime = unit.runtime
    definition = runtime.definitions.get(unit.session, definition_id)
    spec, subprocess_specs = definition.specs
    try:
        workflow = BpmnWorkflow(spec, subprocess_specs, script_engine=SAFE_ENGINE)
    except RecursionError as exc:  # deployed before deploy refused loops it cannot plan
        raise ProcessFailed(
            f"'{definition.key}' cannot start: SpiffWorkflow plans ahead for ever round a "
            "loop that passes no exclusive, inclusive or event-based gateway; deploy a "
            "version that routes the loop through one"
        ) from exc
    # Spiff reads initial variables from the READY start task, not workflow.data.
    for task in workflow.get_tasks(state=SpiffState.READY):
        task.data.update(variables)
    now = runtime.clock.now()
    instance = InstanceRow(
        id=0,
        definition_id=definition.id,
        business_key=business_key,
        status=InstanceStatus.RUNNING,
        state="",
        started_at=now,
        started_by=actor,
        updated_at=now,
        ended_at=None,
        next_wakeup_at=None,
        error=None,
        revision=0,
        audit_seq=0,
        audit_hash=GENESIS,
    )
    with unit.create(instance, definition, workflow, actor) as work:
        work.audit(
            EventKind.INSTANCE_STARTED,
            element_id=definition.key,
            element_name=definition.name,
            data={
                "definition": definition.key,
                "version": definition.version,
                "business_key": business_key,
                "variables": variables,
                **({"timer": timer} if timer else {}),
            },
        )
        yield work


def _fire_start_timers(workflow: BpmnWorkflow) -> bool:
    """Make the top-level start event that waits for a timer go off now: a duration or
    a date fires; a cycle runs this one round (each round is an instance of its own)."""
    fired = False
    for task in workflow.get_tasks(state=SpiffState.WAITING):
        if task.workflow is not workflow or not isinstance(task.task_spec, StartEvent):
            continue
        definition = getattr(task.task_spec, "event_definition", None)
        if isinstance(definition, CycleTimerEventDefinition):
            task.internal_data["event_value"] = {"cycles": 1, "next": _LONG_AGO, "duration": 0.0}
            fired = True
        elif isinstance(definition, TimerEventDefinition):
            task.internal_data["event_fired"] = True
            fired = True
    return fired


def cancel(runtime: Runtime, instance_id: int, *, actor: str, reason: str | None = None) -> None:
    """Cancel a running instance (its workflow cancelled, its open tasks with it), or
    one that failed (nothing runs; its error stays on record)."""
    with runtime.unit("cancel") as unit:
        instance = unit.lock(instance_id)
        if instance.status == InstanceStatus.FAILED:
            unit.cancel_failed(instance, actor, reason)
            return
        with unit.command(instance, actor) as work:
            work.workflow.cancel()
            queues.reconcile(work)  # its open tasks go with it, recorded before the instance
            work.instance.status = InstanceStatus.CANCELLED
            work.instance.ended_at = work.now
            work.audit(EventKind.INSTANCE_CANCELLED, data={"reason": reason})


def wake(runtime: Runtime, instance_id: int, *, actor: str = "system") -> list[str]:
    """Fire the instance's due timers (and record its broken SLAs, as every command
    does); returns the element ids of the timers that fired."""
    with runtime.command(instance_id, actor, name="wake") as work:
        return fire_timers(work)


def fire_timers(work: Work) -> list[str]:
    """Inside a unit of work: fire what is due, audit each as ``timer_fired``."""
    work.firing = True
    waiting = {t.id: t for t in work.workflow.get_tasks(state=SpiffState.WAITING)}
    before = {t.id: _cycle_next(t) for t in waiting.values()}
    stepping.run(work, work.workflow.refresh_timers)
    fired = [
        t
        for t in waiting.values()
        if waits_for_timer(t.task_spec)
        and (not t.has_state(SpiffState.WAITING) or _cycle_next(t) != before[t.id])
    ]
    elements = []
    for task in fired:
        spec = _timer_that_fired(task)
        elements.append(spec.bpmn_id)
        work.fired_timers |= {spec.bpmn_id, task.task_spec.bpmn_id}
        value = task.internal_data.get("event_value")
        work.audit(
            EventKind.TIMER_FIRED,
            element_id=spec.bpmn_id,
            element_name=spec.bpmn_name,
            data={"due": value if not isinstance(value, dict) else before[task.id]},
        )
    return elements


def _cycle_next(task: Task) -> str | None:
    """A cycle timer stays WAITING as it fires; its next due time moves on."""
    value = task.internal_data.get("event_value")
    return str(value.get("next")) if isinstance(value, dict) else None


def _timer_that_fired(task: Task) -> Any:
    """The timer event's spec. An event-based gateway waits on behalf of its events (Spiff
    moves their definitions onto it) and keeps only the child of the one that went on."""
    if len(definitions_of(task.task_spec)) > 1:
        left = [c for c in task.children if not c.has_state(SpiffState.CANCELLED)]
        if len(left) == 1:
            return left[0].task_spec
    return task.task_spec


def fail(runtime: Runtime, instance_id: int, error: str, *, actor: str = "system") -> None:
    """Mark an instance failed after a step could not run (its workflow unchanged): its
    open tasks are cancelled and its subscriptions dropped; it may then be cancelled."""
    with runtime.unit("fail") as unit:
        unit.fail(instance_id, error, actor)


def get(runtime: Runtime, instance_id: int) -> Instance:
    """The instance row with its definition (without the stored spec), for reading."""
    with runtime.db.reading() as session:
        return read(session, instance_id)


def read(session: Session, instance_id: int) -> Instance:
    """``get`` inside the caller's reading session."""
    instance = session.get(
        Instance,
        instance_id,
        options=[joinedload(Instance.definition).defer(Definition.spec_json)],
    )
    if instance is None:
        raise InstanceNotFound(f"no instance {instance_id}", instance=instance_id)
    return instance


def tasks_of(session: Session, instance_id: int, now: datetime) -> list[TaskRow]:
    """The instance's task rows, oldest first, each knowing its instance's business key
    and whether it is overdue at ``now``."""
    rows = store.tasks_of(session.connection(), instance_id)
    key = session.scalar(select(Instance.business_key).where(Instance.id == instance_id))
    for row in rows:
        row.business_key = key
    return queues.stamp_overdue(rows, now)


def current_variables(runtime: Runtime, instance_id: int) -> dict[str, Any]:
    with runtime.db.reading() as session:
        instance = session.get(Instance, instance_id)
        if instance is None:
            raise InstanceNotFound(f"no instance {instance_id}", instance=instance_id)
        return variables(runtime.load(session, instance))


__all__ = [
    "cancel",
    "current_variables",
    "fail",
    "get",
    "read",
    "start",
    "start_failed",
    "tasks_of",
    "wake",
]


@dataclass(frozen=True)
class InstanceQuery:
    status: InstanceStatus | None = None
    definition: str | None = None
    business_key: str | None = None
    business_key_prefix: str | None = None  # SO-2026- finds every 2026 order
    data_contains: str | None = None  # a customer's name, say, anywhere in the order's data
    started_from: datetime | None = None
    started_before: datetime | None = None
    limit: int = 50
    offset: int = 0


def _visible(actor: Actor) -> Any:
    """Instances where one of the actor's roles has (or had) a task."""
    return Instance.id.in_(
        select(HumanTask.instance_id)
        .join(HumanTaskRole, HumanTaskRole.task_id == HumanTask.id)
        .where(HumanTaskRole.role_id.in_(actor.roles))
    )


def _state_contains(text: str) -> Any:
    """The text in an instance's saved state, however the state's JSON wrote it: as it is
    (orjson writes UTF-8) or escaped (json.dumps wrote "\u4e0a\u6d77" for 上海, and a
    quote or backslash in a value escaped in both)."""
    escaped = json.dumps(text)[1:-1]
    raw = json.dumps(text, ensure_ascii=False)[1:-1]
    return or_(*(Instance.state.contains(form, autoescape=True) for form in {raw, escaped}))


def search(
    session: Session, query: InstanceQuery, only_for: Actor | None = None
) -> tuple[list[Instance], int]:
    """Instances by status, definition key and business key, newest first.

    ``only_for``: just those the actor may read through their roles."""
    stmt = select(Instance).options(joinedload(Instance.definition).defer(Definition.spec_json))
    if query.status is not None:
        stmt = stmt.where(Instance.status == query.status)
    if query.definition is not None:
        stmt = stmt.where(
            Instance.definition_id.in_(
                select(Definition.id).where(Definition.key == query.definition)
            )
        )
    if query.business_key is not None:
        stmt = stmt.where(Instance.business_key == query.business_key)
    if query.business_key_prefix:
        prefix = query.business_key_prefix.replace("\\", "\\\\").replace("%", "\\%")
        prefix = prefix.replace("_", "\\_")
        stmt = stmt.where(Instance.business_key.like(prefix + "%", escape="\\"))
    if query.data_contains:
        stmt = stmt.where(_state_contains(query.data_contains))
    if query.started_from is not None:
        stmt = stmt.where(Instance.started_at >= query.started_from)
    if query.started_before is not None:
        stmt = stmt.where(Instance.started_at < query.started_before)
    if only_for is not None:
        stmt = stmt.where(_visible(only_for))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(Instance.id.desc()).limit(query.limit).offset(query.offset)
    ).all()
    return list(rows), total


def readable_by(session: Session, actor: Actor, instance_id: int) -> bool:
    """An employee may read an instance in which one of their roles has a task, and one
    they started themselves."""
    mine = Instance.started_by == actor.name
    return (
        session.scalar(
            select(Instance.id).where(Instance.id == instance_id, mine | _visible(actor))
        )
        is not None
    )

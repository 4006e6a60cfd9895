"""Starting, cancelling and waking process instances."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine import queues
from engine.audit import GENESIS, EventKind
from engine.errors import BusinessKeyTaken, FormInvalid, ProcessFailed
from engine.execution import SAFE_ENGINE
from engine.execution import variables as execution_variables
from engine.modeling import (
    INITIATOR,
    check_names,
    definitions,
    definitions_of,
    form_fields,
    waits_for_timer,
)
from engine.runtime import DefinitionInfo, Runtime, Unit, Work, repeats, stepping
from engine.storage import (
    Definition,
    Instance,
    InstanceRow,
    InstanceStatus,
    TaskRow,
    faults,
    locks,
)

_LONG_AGO = "1970-01-01T00:00:00+00:00"
MAX_BUSINESS_KEY = 255


@dataclass(frozen=True)
class Started:
    """A new instance as its start left it, made in the start's unit of work: the answer
    needs no second read, which could fail after the start committed."""

    id: int
    status: InstanceStatus
    business_key: str | None
    definition: DefinitionInfo
    started_at: datetime
    started_by: str
    ended_at: datetime | None
    next_wakeup_at: datetime | None
    error: str | None
    variables: dict[str, Any]
    tasks: list[TaskRow]  # its open tasks


def start(
    runtime: Runtime,
    key: str,
    *,
    actor: str,
    business_key: str | None = None,
    variables: dict[str, Any] | None = None,
    version: int | None = None,
    once: Callable[[tuple[Any, ...]], repeats.Once | None] = lambda asked: None,
) -> Started:
    """Start an instance of a definition (latest version unless given). ``once``: the
    request under its sender's key, given what it asks (repeats.py): a repeat raises
    ``AnsweredBefore`` and starts nothing."""
    variables = dict(variables or {})
    check_names(variables)
    if business_key is not None and not 0 < len(business_key) <= MAX_BUSINESS_KEY:
        raise FormInvalid(f"business key must be 1..{MAX_BUSINESS_KEY} characters")
    request = once(("start", key, version, business_key, variables))
    try:
        return _start(runtime, key, actor, business_key, variables, version, request)
    except IntegrityError as exc:
        if request is None or not faults.violates(exc, repeats.KEY_CONSTRAINT):
            raise
        # the same key sent twice at once: the other committed first, this finds its answer
        return _start(runtime, key, actor, business_key, variables, version, request)


def _start(
    runtime: Runtime,
    key: str,
    actor: str,
    business_key: str | None,
    variables: dict[str, Any],
    version: int | None,
    request: repeats.Once | None,
) -> Started:
    with runtime.unit("start", request) as unit:
        found = definitions.find(unit.session, key, version)
        if business_key is not None and found.messages:
            _claim_business_key(runtime, unit.session, found.key, found.messages, business_key)
        if variables:
            _check_not_decided_later(runtime, unit.session, found.id, variables)
        work = start_in(unit, found.id, actor, business_key, variables, report=True)
        row = work.instance
        return unit.answer(
            Started(
                row.id,
                row.status,
                row.business_key,
                work.definition,
                row.started_at,
                row.started_by,
                row.ended_at,
                row.next_wakeup_at,
                row.error,
                execution_variables(work.workflow),
                queues.stamp_overdue(work.open_after, work.now),
            )
        )


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
    report: bool = False,
) -> Work:
    """Start an instance in the caller's unit. A start event that waits for a timer
    fires at once: starting is what its timer was for (``timer``: the scheduler's start
    timer that went off, recorded in the audit trail). ``report``: the work ends with
    the instance's open tasks (``Work.open_after``)."""
    with _new_instance(unit, definition_id, actor, business_key, variables, timer) as work:
        work.report_open = report
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
    for started in spec.start.outputs:  # camunda:initiator: who started, in a variable
        if timer is not None:
            break  # nobody started it: Camunda leaves the variable unset
        if name := getattr(started, "extensions", {}).get(INITIATOR):
            variables = {**variables, name: actor}
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


__all__ = ["Started", "cancel", "fail", "start", "start_failed", "wake"]

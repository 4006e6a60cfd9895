"""Starting, cancelling and waking process instances."""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState as SpiffState

from engine import definitions
from engine.audit import EventKind
from engine.errors import FormInvalid, InstanceNotFound
from engine.events import waits_for_timer
from engine.models import HumanTask, Instance, InstanceStatus, TaskState
from engine.runtime import Runtime, Work, lock_instance, next_timer
from engine.serialization import SAFE_ENGINE

MAX_BUSINESS_KEY = 255


def _check_variables(variables: dict[str, Any]) -> None:
    bad = [
        k for k in variables if not isinstance(k, str) or not k.isidentifier() or k.startswith("__")
    ]
    if bad:
        raise FormInvalid(f"variable names must be identifiers: {bad!r}", names=bad)


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
    _check_variables(variables)
    if business_key is not None and not 0 < len(business_key) <= MAX_BUSINESS_KEY:
        raise FormInvalid(f"business key must be 1..{MAX_BUSINESS_KEY} characters")
    with runtime.db.transaction() as session:
        definition = definitions.find(session, key, version)
        spec, subprocess_specs = runtime.specs.get(definition.id, definition.spec_json)
        workflow = BpmnWorkflow(spec, subprocess_specs, script_engine=SAFE_ENGINE)
        # Spiff reads initial variables from the READY start task, not workflow.data.
        for task in workflow.get_tasks(state=SpiffState.READY):
            task.data.update(variables)
        now = runtime.clock.now()
        instance = Instance(
            definition_id=definition.id,
            definition=definition,
            business_key=business_key,
            status=InstanceStatus.RUNNING,
            state="",
            started_at=now,
            started_by=actor,
            updated_at=now,
        )
        session.add(instance)
        session.flush()
        work = Work(runtime, session, instance, workflow, actor)
        work.audit(
            EventKind.INSTANCE_STARTED,
            element_id=key,
            element_name=definition.name,
            data={
                "definition": key,
                "version": definition.version,
                "business_key": business_key,
                "variables": variables,
            },
        )
        work.run_engine()
        work.settle()
        return instance.id


def cancel(runtime: Runtime, instance_id: int, *, actor: str, reason: str | None = None) -> None:
    with runtime.command(instance_id, actor) as work:
        work.workflow.cancel()
        _close(work, InstanceStatus.CANCELLED)
        work.audit(EventKind.INSTANCE_CANCELLED, data={"reason": reason})


def _close(work: Work, status: InstanceStatus) -> None:
    work.instance.status = status
    work.instance.ended_at = work.now
    for task in work.session.query(HumanTask).filter_by(
        instance_id=work.instance.id, state=TaskState.OPEN
    ):
        task.state = TaskState.CANCELLED
        task.ended_at = work.now
        work.audit(
            EventKind.TASK_CANCELLED,
            element_id=task.element_id,
            element_name=task.name,
            data={"task_id": task.id},
        )


def wake(runtime: Runtime, instance_id: int, *, actor: str = "system") -> list[str]:
    """Fire the instance's due timers; returns the element ids of those that fired."""
    with runtime.command(instance_id, actor) as work:
        waiting = {t.id: t for t in work.workflow.get_tasks(state=SpiffState.WAITING)}
        work.run_engine(work.workflow.refresh_timers)
        fired = [
            t
            for t in waiting.values()
            if not t.has_state(SpiffState.WAITING) and waits_for_timer(t.task_spec)
        ]
        for task in fired:
            work.audit(
                EventKind.TIMER_FIRED,
                element_id=task.task_spec.bpmn_id,
                element_name=task.task_spec.bpmn_name,
                data={"due": task.internal_data.get("event_value")},
            )
        return [t.task_spec.bpmn_id for t in fired]


def fail(runtime: Runtime, instance_id: int, error: str, *, actor: str = "system") -> None:
    """Mark an instance failed after a background step could not run (state unchanged)."""
    with runtime.db.transaction() as session:
        instance = lock_instance(session, instance_id, runtime.db.is_postgres)
        if instance.status != InstanceStatus.RUNNING:
            return
        workflow = runtime.load(instance)
        work = Work(runtime, session, instance, workflow, actor)
        instance.status = InstanceStatus.FAILED
        instance.error = error
        instance.next_wakeup_at = None
        work.audit(EventKind.INSTANCE_FAILED, data={"error": error})


def get(runtime: Runtime, instance_id: int) -> Instance:
    with runtime.db.reading() as session:
        instance = session.get(Instance, instance_id)
        if instance is None:
            raise InstanceNotFound(f"no instance {instance_id}", instance=instance_id)
        return instance


def current_variables(runtime: Runtime, instance_id: int) -> dict[str, Any]:
    from engine.runtime import variables

    instance = get(runtime, instance_id)
    return variables(runtime.load(instance))


__all__ = ["cancel", "current_variables", "fail", "get", "next_timer", "start", "wake"]

"""The unit of work: every command on an instance is one transaction through here.

1. lock the instance row; 2. load the workflow (spec from the cache, safe script
engine attached); 3. the command changes it, then the engine steps run; 4. reconcile
role queues, message subscriptions and the next wake-up; 5. append audit events and
save. Any exception rolls the whole transaction back.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState as SpiffState
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import queues
from engine.audit import AuditTrail, EventKind, instance_stream
from engine.clock import Clock, SystemClock
from engine.db import Database
from engine.errors import (
    ExpressionRefused,
    InstanceNotFound,
    InstanceNotRunning,
    ProcessFailed,
)
from engine.events import waits_for_timer
from engine.models import Instance, InstanceStatus
from engine.serialization import SpecCache, StateSerializer


class Runtime:
    """Long-lived: one per process. Holds the database, the clock and the spec cache."""

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        self.db = db
        self.clock: Clock = clock or SystemClock()
        self.serializer = StateSerializer()
        self.specs = SpecCache(self.serializer)

    @contextmanager
    def command(
        self, instance_id: int, actor: str, guard: Callable[[Session], object] | None = None
    ) -> Iterator[Work]:
        """Lock, load, let the caller act, settle, save: all or nothing.

        ``guard`` runs right after the lock, so a command that lost a race reports what
        it lost (the task was completed) rather than a consequence (the instance ended).
        """
        with self.db.transaction() as session:
            instance = lock_instance(session, instance_id, self.db.is_postgres)
            if guard is not None:
                guard(session)
            if instance.status != InstanceStatus.RUNNING:
                raise InstanceNotRunning(
                    f"instance {instance_id} is {instance.status.value}", instance=instance_id
                )
            workflow = self.load(instance)
            work = Work(self, session, instance, workflow, actor)
            yield work
            work.settle()

    def load(self, instance: Instance) -> BpmnWorkflow:
        definition = instance.definition
        specs = self.specs.get(definition.id, definition.spec_json)
        return self.serializer.loads(instance.state, specs)


def lock_instance(session: Session, instance_id: int, postgres: bool) -> Instance:
    query = select(Instance).where(Instance.id == instance_id)
    if postgres:  # SQLite serialises writers with BEGIN IMMEDIATE instead
        query = query.with_for_update(of=Instance)
    instance = session.scalars(query).first()
    if instance is None:
        raise InstanceNotFound(f"no instance {instance_id}", instance=instance_id)
    return instance


def variables(workflow: BpmnWorkflow) -> dict[str, Any]:
    """The instance's variables: the data at the workflow's frontier."""
    if workflow.completed:
        return dict(workflow.data)
    merged: dict[str, Any] = {}
    for task in workflow.get_tasks(
        state=SpiffState.READY | SpiffState.WAITING | SpiffState.STARTED
    ):
        if task.workflow is workflow:
            merged.update(task.data)
    return merged


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """{name: [before, after]} for every variable that changed (None when absent)."""
    keys = (before.keys() | after.keys()) - {"data_objects"}
    return {k: [before.get(k), after.get(k)] for k in sorted(keys) if before.get(k) != after.get(k)}


class Work:
    """One command in progress on one instance."""

    def __init__(
        self,
        runtime: Runtime,
        session: Session,
        instance: Instance,
        workflow: BpmnWorkflow,
        actor: str,
    ) -> None:
        self.runtime = runtime
        self.session = session
        self.instance = instance
        self.workflow = workflow
        self.actor = actor
        self.now: datetime = runtime.clock.now()
        self.trail = AuditTrail(session)
        self.before = copy.deepcopy(variables(workflow))
        self.after_steps: list[Callable[[Work], None]] = []

    @property
    def stream(self) -> str:
        return instance_stream(self.instance.id)

    def audit(self, kind: EventKind, **fields: Any) -> None:
        self.trail.append(
            self.stream,
            kind,
            at=self.now,
            actor=fields.pop("actor", self.actor),
            instance_id=self.instance.id,
            **fields,
        )

    def run_engine(self, step: Callable[[], object] | None = None) -> None:
        """Run ``step`` then the engine; a diagram error becomes ProcessFailed."""
        try:
            if step is not None:
                step()
            self.workflow.do_engine_steps()
        except (SpiffWorkflowException, ExpressionRefused) as exc:
            raise ProcessFailed(_describe(exc), instance=self.instance.id) from exc
        except (ArithmeticError, LookupError, TypeError, ValueError, NameError) as exc:
            raise ProcessFailed(f"{type(exc).__name__}: {exc}", instance=self.instance.id) from exc
        failed = self.workflow.get_tasks(state=SpiffState.ERROR)
        if failed:
            spec = failed[0].task_spec
            raise ProcessFailed(
                f"element '{spec.bpmn_id or spec.name}' failed", instance=self.instance.id
            )

    def settle(self) -> None:
        """Reconcile queues, subscriptions and wake-up; close the instance if done; save."""
        rounds = 0
        while True:
            queues.reconcile(self)
            delivered = self.runtime_hooks()
            rounds += 1
            if not delivered or rounds > 20:
                break
        self.instance.next_wakeup_at = next_timer(self.workflow)
        if self.workflow.completed and self.instance.status == InstanceStatus.RUNNING:
            self.instance.status = InstanceStatus.COMPLETED
            self.instance.ended_at = self.now
            self.audit(EventKind.INSTANCE_COMPLETED, data={"variables": variables(self.workflow)})
        self.instance.state = self.runtime.serializer.dumps(self.workflow)
        self.instance.updated_at = self.now

    def runtime_hooks(self) -> bool:
        """Deliver buffered messages the instance now waits for; True if any was."""
        from engine import messages  # circular: messages uses Work

        return messages.deliver_buffered(self)


def next_timer(workflow: BpmnWorkflow) -> datetime | None:
    due: list[datetime] = []
    for task in workflow.get_tasks(state=SpiffState.WAITING):
        if waits_for_timer(task.task_spec):
            value = task.internal_data.get("event_value")
            if isinstance(value, str):
                due.append(datetime.fromisoformat(value))
    return min(due) if due else None


def _describe(exc: Exception) -> str:
    task = getattr(exc, "task", None)
    element = getattr(getattr(task, "task_spec", None), "bpmn_id", None)
    message = getattr(exc, "error", None) or str(exc)
    return f"element '{element}': {message}" if element else str(message)

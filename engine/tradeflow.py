"""One object to drive the engine with: what the API, the CLI and tests call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import audit, queues
from engine.audit import verification
from engine.clock import Clock
from engine.commands import instances, messages, reading, tasks
from engine.errors import DiagramInvalid, Problem
from engine.execution import elements, variables
from engine.modeling import definitions
from engine.people import users
from engine.reporting import facts
from engine.runtime import Runtime, repeats
from engine.storage import (
    AuditEvent,
    Database,
    Instance,
    TaskRow,
    TaskState,
    User,
    schema,
)
from engine.timers import BusinessCalendar


class _DryRun(Exception):
    """Rolls a checked deployment back."""


@dataclass(frozen=True)
class InstanceView:
    """What a page shows of an instance: its diagram with what is done, active and
    overdue, its variables, its open tasks and its trail."""

    instance: Instance
    xml: str
    done: list[str]  # element ids finished and not active again
    active: list[str]  # element ids running or waiting, within their time
    overdue: list[str]  # element ids of open tasks past their due time
    variables: dict[str, Any]
    open_tasks: list[TaskRow]
    history: list[AuditEvent]


class Tradeflow:
    def __init__(
        self,
        db: Database | None = None,
        clock: Clock | None = None,
        calendar: BusinessCalendar | None = None,
    ) -> None:
        self.db = db or Database()
        facts.configured()  # content that names no case-fact column fails here, not later
        self.runtime = Runtime(self.db, clock, calendar)

    @property
    def clock(self) -> Clock:
        return self.runtime.clock

    def upgrade(self) -> None:
        schema.upgrade(self.db)

    # definitions
    def deploy(self, files: list[tuple[str, bytes]], *, actor: str) -> definitions.DeploymentResult:
        with self.db.transaction() as session:
            return self._deploy_in(session, files, actor)

    def _deploy_in(
        self, session: Session, files: list[tuple[str, bytes]], actor: str
    ) -> definitions.DeploymentResult:
        return definitions.deploy(
            session,
            self.runtime.serializer,
            files,
            actor=actor,
            now=self.clock.now(),
            limits=self.runtime.limits,
        )

    def check(self, files: list[tuple[str, bytes]], *, actor: str) -> list[Problem]:
        """Lint and parse as a deployment would, and store nothing: the modeler's check."""
        try:
            with self.db.transaction() as session:
                self._deploy_in(session, files, actor)
                raise _DryRun
        except DiagramInvalid as exc:
            return list(exc.problems)
        except _DryRun:
            return []

    # instances
    def start(
        self,
        key: str,
        *,
        actor: str,
        business_key: str | None = None,
        variables: dict[str, Any] | None = None,
        version: int | None = None,
    ) -> int:
        return self.started(
            key, actor=actor, business_key=business_key, variables=variables, version=version
        ).id

    def started(
        self,
        key: str,
        *,
        actor: str,
        business_key: str | None = None,
        variables: dict[str, Any] | None = None,
        version: int | None = None,
        once: Callable[[tuple[Any, ...]], repeats.Once | None] = lambda asked: None,
    ) -> instances.Started:
        """Start an instance; the answer is the instance as its start left it (``once``:
        the request under its sender's key, engine/runtime/repeats.py)."""
        return instances.start(
            self.runtime,
            key,
            actor=actor,
            business_key=business_key,
            variables=variables,
            version=version,
            once=once,
        )

    def cancel(self, instance_id: int, *, actor: str, reason: str | None = None) -> None:
        instances.cancel(self.runtime, instance_id, actor=actor, reason=reason)

    def wake(self, instance_id: int) -> list[str]:
        return instances.wake(self.runtime, instance_id)

    def instance(self, instance_id: int) -> Instance:
        return reading.get(self.runtime, instance_id)

    def variables(self, instance_id: int) -> dict[str, Any]:
        return reading.current_variables(self.runtime, instance_id)

    def view(self, instance_id: int) -> InstanceView:
        """An instance as its page shows it (read in one snapshot, but the trail)."""
        now = self.clock.now()
        with self.db.reading() as session:
            instance = reading.read(session, instance_id)
            definition = instance.definition
            xml = definitions.source(session, definition.key, definition.version)
            workflow = self.runtime.load(session, instance)
            rows = reading.tasks_of(session, instance_id, now)
        # the tree holds only what is live (compaction): the done elements of the tasks
        # dropped from it are recorded on its root, and elements() adds them
        done, active = elements(workflow)
        overdue = {t.element_id for t in rows if t.overdue}
        return InstanceView(
            instance=instance,
            xml=xml,
            done=sorted(done - active),
            active=sorted(active - overdue),
            overdue=sorted(overdue),
            variables=variables(workflow),
            open_tasks=[t for t in rows if t.state == TaskState.OPEN],
            history=self.history(instance_id),
        )

    # tasks
    # a task the engine hands out knows whether it is overdue (queues.stamp_overdue):
    # a command stamps its task in its unit (commands/tasks.py), a read here
    def task(self, task_id: int) -> TaskRow:
        """One task, with its instance's business key and its form's latest version."""
        return self._stamped(tasks.read(self.runtime, task_id))

    def claim(self, task_id: int, *, actor: str) -> TaskRow:
        return tasks.claim(self.runtime, task_id, actor)

    def unclaim(self, task_id: int, *, actor: str) -> TaskRow:
        return tasks.unclaim(self.runtime, task_id, actor)

    def delegate(self, task_id: int, *, actor: str, to: str) -> TaskRow:
        return tasks.delegate(self.runtime, task_id, actor, to)

    def complete(
        self,
        task_id: int,
        *,
        actor: str,
        data: dict[str, Any] | None = None,
        once: Callable[[tuple[Any, ...]], repeats.Once | None] = lambda asked: None,
    ) -> TaskRow:
        """Complete a task; the answer is made in its unit of work (stamped there)."""
        return tasks.complete(self.runtime, task_id, actor, data or {}, once)

    def _stamped(self, task: TaskRow) -> TaskRow:
        [found] = queues.stamp_overdue([task], self.clock.now())
        return found

    def inbox(self, user: str, query: queues.InboxQuery | None = None) -> queues.InboxPage:
        with self.db.reading() as session:
            return queues.inbox(
                session,
                users.identity(session, user),
                query or queues.InboxQuery(),
                self.clock.now(),
            )

    def tasks_of(self, instance_id: int) -> list[TaskRow]:
        with self.db.reading() as session:
            return reading.tasks_of(session, instance_id, self.clock.now())

    # messages
    def correlate(
        self,
        name: str,
        *,
        actor: str,
        business_key: str | None = None,
        correlation: dict[str, Any] | None = None,
        variables: dict[str, Any] | None = None,
        ttl: timedelta = messages.DEFAULT_TTL,
        idempotency_key: str | None = None,
    ) -> messages.Correlation:
        return messages.correlate(
            self.runtime,
            name,
            actor=actor,
            business_key=business_key,
            correlation=correlation,
            variables_=variables,
            ttl=ttl,
            idempotency_key=idempotency_key,
        )

    # audit
    def history(self, instance_id: int) -> list[AuditEvent]:
        with self.db.reading() as session:
            return list(
                session.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.stream == audit.instance_stream(instance_id))
                    .order_by(AuditEvent.seq)
                )
            )

    def verify(
        self, stream: str, pins: verification.Pins | None = None
    ) -> verification.Verification:
        """One stream's chain, its end against its recorded head, and its anchored events."""
        with verification.snapshot(self.db) as session:
            return verification.verify_stream(session, stream, pins)

    # users
    def add_user(
        self, name: str, roles: list[str] | None = None, flags: users.Flags | None = None
    ) -> tuple[User, str]:
        with self.db.transaction() as session:
            return users.add_user(
                session, name, roles or [], flags or users.Flags(), self.clock.now()
            )

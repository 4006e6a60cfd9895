"""The unit of work: every change to an instance goes through here.

A ``Unit`` is one transaction. Inside it, each command on an instance (``Unit.command``
for one that exists, ``Unit.create`` for a new one) 1. locks the instance row; 2. loads
the workflow (the live copy if the row's revision still matches, else deserialised onto
the cached spec, the safe script engine attached); 3. lets the caller change it, running
the engine on the command's budget (stepping.py); 4. settles (settle.py): queues,
subscriptions, kept messages, time limits, the next wake-up, the audit events, the save.
An instance that cannot go on is ended without its workflow (``Unit.fail``, and
``Unit.cancel_failed`` for one that failed earlier): its open tasks are cancelled, its
subscriptions dropped, the reason recorded.

Once the transaction commits, the unit does what must follow every commit: the live
cache keeps the new workflows, the metrics count the commands, the scheduler hears of
the next wake-ups. Any exception rolls the whole transaction back (or the savepoint it
happened in) and the live copies it touched are dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any, TypeVar

from SpiffWorkflow.bpmn import BpmnWorkflow
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from engine import queues
from engine.audit import AuditTrail, EventKind, instance_stream
from engine.clock import Clock, SystemClock, as_utc
from engine.errors import InstanceNotFound, InstanceNotRunning
from engine.execution import PartMissing, StateSerializer, has_parts, limits, scan
from engine.runtime import metrics, repeats
from engine.runtime.caches import DecisionTables, DefinitionCache, DefinitionInfo, LiveWorkflows
from engine.runtime.settle import settle
from engine.runtime.work import Work
from engine.storage import (
    Database,
    Instance,
    InstanceRow,
    InstanceStatus,
    RequestKey,
    Writes,
    state_parts,
    store,
    subscriptions,
)
from engine.timers import BusinessCalendar, load_calendar

RESTORE_TRIES = 3  # reads of a state and its parts that raced a save, before giving up
log = logging.getLogger("tradeflow.unit")
T = TypeVar("T")


class Runtime:
    """Long-lived: one per process. Holds the database, the clock and the caches."""

    def __init__(
        self, db: Database, clock: Clock | None = None, calendar: BusinessCalendar | None = None
    ) -> None:
        self.db = db
        self.clock: Clock = clock or SystemClock()
        self.calendar = calendar or load_calendar()
        self.limits = limits.Limits.from_env()  # what one command may spend (limits.py)
        # told of every committed wake-up time (the scheduler of this process listens)
        self.on_wakeup: Callable[[datetime], None] | None = None
        self.serializer = StateSerializer()
        self.definitions = DefinitionCache(self.serializer)
        self.decisions = DecisionTables()
        self.live = LiveWorkflows()
        # finished tasks are dropped from the task tree as each command settles
        # (engine/execution/compaction.py); off only to compare with Spiff's own tree in tests
        self.compact_trees = True

    @contextmanager
    def unit(self, name: str, once: repeats.Once | None = None) -> Iterator[Unit]:
        """One transaction for the commands the caller runs in it; what must follow the
        commit happens when it has (``name``: the commands' name in the metrics).
        ``once``: the request's own key (repeats.py); its first answer, if it was sent
        before, is raised as ``AnsweredBefore`` and nothing runs; else the caller gives
        the unit its answer (``Unit.answer``) before it ends."""
        began = time.perf_counter()
        with self.db.unit() as session:
            unit = Unit(self, session)
            if once is not None:
                unit.once = (once, repeats.claim(session, once, self.clock.now()))
            yield unit
            if unit.once is not None and unit.once[1].answer is None:
                raise RuntimeError(f"unit '{name}' ran under a key and kept no answer")
            unit.writes.flush()  # nothing pending may miss the commit (each command flushed)
        try:
            self._committed(unit, name, time.perf_counter() - began)
        except Exception:  # committed: the caller's answer stands; the cache is dropped
            log.exception("after unit '%s' committed", name)
            with suppress(Exception):
                for work in unit.settled:
                    self.live.drop(work.instance.id)

    def _committed(self, unit: Unit, name: str, seconds: float) -> None:
        """What follows every commit; nothing here may undo or hide it."""
        for work in unit.settled:
            self.live.keep(work.instance, work.workflow)
            metrics.unit_of_work(name, seconds)
            if self.on_wakeup is not None and work.instance.next_wakeup_at is not None:
                self.on_wakeup(work.instance.next_wakeup_at)
        for instance_id in unit.ended:
            self.live.drop(instance_id)
            metrics.unit_of_work(name, seconds)
        if unit.settled or unit.ended:
            metrics.live_cache(*self.live.held)
        if self.db.writers_overlap:
            for instance_id, (business_key, names) in unit.writes.new_waits.items():
                self._take_kept(instance_id, business_key, names)

    def _take_kept(self, instance_id: int, business_key: str | None, names: list[str]) -> None:
        """An instance came to wait for messages: one kept meanwhile by a transaction
        this unit could not see (PostgreSQL runs them side by side) is handed over now,
        in a command of its own. The unit it follows has committed, so nothing raised
        here reaches its caller: it is logged, and the scheduler's sweep looks again."""
        try:
            with self.db.read_connection() as conn:
                if not subscriptions.kept_for(conn, names, business_key, self.clock.now()):
                    return
            with self.command(instance_id, "system", name="kept_message"):
                pass  # settling hands kept messages over
        except (InstanceNotRunning, InstanceNotFound):
            return
        except Exception:
            log.exception("instance %s: a kept message could not be handed over", instance_id)

    @contextmanager
    def command(self, instance_id: int, actor: str, *, name: str = "command") -> Iterator[Work]:
        """One command on one instance, in a transaction of its own."""
        with self.unit(name) as unit, unit.command(instance_id, actor) as work:
            yield work

    def load(self, session: Session, instance: Instance | InstanceRow) -> BpmnWorkflow:
        """A private copy of an instance's workflow, for reading."""
        definition = self.definitions.get(session, instance.definition_id)
        return self.restore(session.connection(), instance, definition)

    def restore(
        self, conn: Connection, instance: Instance | InstanceRow, definition: DefinitionInfo
    ) -> BpmnWorkflow:
        """The workflow from the instance's saved state and the parts it refers to. Read
        without the instance's lock on PostgreSQL, the state may be older than the parts
        (a save committed between the two reads and dropped a part the older state
        needs): then both are read again."""
        state = instance.state
        for _ in range(RESTORE_TRIES - 1):
            parts = state_parts.parts_of(conn, instance.id) if has_parts(state) else None
            try:
                return self.serializer.loads(state, definition.specs, parts)
            except PartMissing:
                state = store.state_of(conn, instance.id) or state
        parts = state_parts.parts_of(conn, instance.id) if has_parts(state) else None
        return self.serializer.loads(state, definition.specs, parts)


class Unit:
    """One transaction and the commands run in it (made by ``Runtime.unit``)."""

    def __init__(self, runtime: Runtime, session: Session) -> None:
        self.runtime = runtime
        self.session = session
        self.conn = session.connection()
        self.writes = Writes(self.conn)  # every row the unit's commands add or change
        self.settled: list[Work] = []  # commands done, in the order they settled
        self.ended: list[int] = []  # instances ended without their workflow
        self.once: tuple[repeats.Once, RequestKey] | None = None  # the request's key, if it has one

    def answer(self, result: T) -> T:
        """The unit's result, kept as its answer with the request's key if it has one."""
        if self.once is not None:
            repeats.answer(self.once[1], self.once[0], result)
        return result

    def lock(self, instance_id: int) -> InstanceRow:
        """The instance's row, locked until the unit ends."""
        found = store.lock_instance(self.conn, instance_id)
        if found is None:
            raise InstanceNotFound(f"no instance {instance_id}", instance=instance_id)
        return found

    @contextmanager
    def command(self, target: int | InstanceRow, actor: str) -> Iterator[Work]:
        """A command on a running instance: its id, or its row this unit already locked
        (read along with a task, or claimed with other due instances)."""
        instance = target if isinstance(target, InstanceRow) else self.lock(target)
        if instance.status != InstanceStatus.RUNNING:
            raise InstanceNotRunning(
                f"instance {instance.id} is {instance.status.value}", instance=instance.id
            )
        runtime = self.runtime
        definition = runtime.definitions.get(self.session, instance.definition_id)
        workflow = runtime.live.take(instance.id, instance.revision)
        if workflow is None:
            workflow = runtime.restore(self.conn, instance, definition)
        work = self._work(instance, definition, workflow, actor)
        yield work
        settle(runtime, work)
        self.settled.append(work)

    @contextmanager
    def create(
        self, instance: InstanceRow, definition: DefinitionInfo, workflow: BpmnWorkflow, actor: str
    ) -> Iterator[Work]:
        """A command that makes a new instance: its row is inserted, the caller starts it."""
        self.writes.add_instance(instance)
        work = self._work(instance, definition, workflow, actor)
        yield work
        if instance.status == InstanceStatus.FAILED:  # it never ran: nothing to settle
            instance.state = self.runtime.serializer.dumps(workflow)
            self._end(work.trail, instance)
            return
        settle(self.runtime, work)
        self.settled.append(work)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of the unit that can fail on its own: rolled back alone, its commands
        forgotten, and the exception raised on to the caller."""
        settled, ended = len(self.settled), len(self.ended)
        self.writes.flush()  # what came before is not the part's to undo
        waits = dict(self.writes.new_waits)
        nested = self.session.begin_nested()
        # the session would emit its SAVEPOINT only when it next used the connection
        # itself, after the Core statements the savepoint is there to undo
        self.session.connection()
        try:
            yield
            nested.commit()  # flushes the ORM's changes: an error there is the part's too
        except BaseException:
            self.writes.discard()
            self.writes.new_waits = waits
            nested.rollback()
            for work in self.settled[settled:]:
                self.runtime.live.drop(work.instance.id)
            del self.settled[settled:], self.ended[ended:]
            raise

    def fail(self, instance_id: int, error: str, actor: str) -> bool:
        """Mark a running instance failed after a step could not run: its workflow as it
        was before that step, its open tasks cancelled, its subscriptions dropped, the
        error recorded. False if it was no longer running."""
        instance = self.lock(instance_id)
        if instance.status != InstanceStatus.RUNNING:
            return False
        trail = self._trail(instance)
        self._let_go(trail, instance, actor, "instance failed")
        instance.status, instance.error = InstanceStatus.FAILED, error
        now = self._now_for(instance)
        _append(trail, instance, now, actor, EventKind.INSTANCE_FAILED, {"error": error})
        self._end(trail, instance)
        return True

    def cancel_failed(self, instance: InstanceRow, actor: str, reason: str | None) -> None:
        """Cancel an instance that failed: nothing runs, the failure's error stays. Open
        tasks it still has (failed before failing let go of them) are cancelled now."""
        trail = self._trail(instance)
        self._let_go(trail, instance, actor, "instance cancelled")
        now = self._now_for(instance)
        instance.status, instance.ended_at = InstanceStatus.CANCELLED, self._now
        data = {"reason": reason, "was": InstanceStatus.FAILED.value}
        _append(trail, instance, now, actor, EventKind.INSTANCE_CANCELLED, data)
        self._end(trail, instance)

    def postpone(self, instance: InstanceRow, until: datetime) -> None:
        """Move a running instance's next wake-up, and only that: the row object may hold
        what a command rolled back since (its state, revision and audit head)."""
        self.writes.postpone(instance.id, until)
        instance.next_wakeup_at = until

    @property
    def _now(self) -> datetime:
        return self.runtime.clock.now()

    def _now_for(self, instance: InstanceRow) -> datetime:
        """The time of an event in the instance's trail: the clock's, but never before
        the instance's last change. A step back of the system clock (then corrected)
        must not put the trail out of order; deadlines and task times go by the clock."""
        return max(self._now, as_utc(instance.updated_at))

    def _work(
        self, instance: InstanceRow, definition: DefinitionInfo, workflow: BpmnWorkflow, actor: str
    ) -> Work:
        frontier = scan(workflow)
        work = Work(
            session=self.session,
            conn=self.conn,
            writes=self.writes,
            instance=instance,
            definition=definition,
            workflow=workflow,
            actor=actor,
            now=self._now,
            trail_floor=as_utc(instance.updated_at),
            budget=limits.Budget(self.runtime.limits),
            decisions=self.runtime.decisions.source(self.session),
            calendar=self.runtime.calendar,
            trail=self._trail(instance),
            stream=instance_stream(instance.id),
            open_rows={
                str(t.id): (t.internal_data[queues.ROW], t.task_spec.bpmn_id, t.task_spec.bpmn_name)
                for t in frontier.ready_manual
                if queues.ROW in t.internal_data
            },
            stored_cycles=[
                t for t in frontier.waiting if isinstance(t.internal_data.get("event_value"), dict)
            ],
        )
        return work

    def _trail(self, instance: InstanceRow) -> AuditTrail:
        trail = AuditTrail(self.session)
        trail.seed(instance_stream(instance.id), instance.audit_seq, instance.audit_hash)
        return trail

    def _let_go(self, trail: AuditTrail, instance: InstanceRow, actor: str, why: str) -> None:
        """Cancel the instance's open tasks (read from their rows: the workflow may be
        what cannot be loaded) and drop its message subscriptions."""
        now, at = self._now, self._now_for(instance)
        for row in store.open_tasks_of(self.conn, instance.id):
            self.writes.cancel_task(row.id, now)
            kind, data = EventKind.TASK_CANCELLED, {"task_id": row.id, "why": why}
            _append(trail, instance, at, actor, kind, data, row.element_id, row.name)
        self.writes.subscribe(instance, [])

    def _end(self, trail: AuditTrail, instance: InstanceRow) -> None:
        """Save an instance ended without running its workflow (a failed one keeps no
        end time: it may still be cancelled)."""
        instance.updated_at = self._now_for(instance)
        instance.next_wakeup_at = None
        instance.revision += 1
        instance.audit_seq, instance.audit_hash = trail.head(instance_stream(instance.id))
        self.writes.save_instance(instance)
        trail.write(self.writes)
        self.writes.flush()
        if instance.id not in self.ended:
            self.ended.append(instance.id)


def _append(
    trail: AuditTrail,
    instance: InstanceRow,
    now: datetime,
    actor: str,
    kind: EventKind,
    data: dict[str, Any],
    element_id: str | None = None,
    element_name: str | None = None,
) -> None:
    trail.append(
        instance_stream(instance.id),
        kind,
        at=now,
        actor=actor,
        instance_id=instance.id,
        element_id=element_id,
        element_name=element_name,
        data=data,
    )

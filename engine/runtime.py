"""The unit of work: every command on an instance is one transaction through here.

1. lock the instance row; 2. load the workflow (the live copy if the row's revision
still matches, else deserialise it onto the cached spec, the safe script engine
attached); 3. the command changes it, then the engine steps run, on the command's
budget of steps, seconds and built data (limits.py); 4. reconcile role
queues, message subscriptions and the next wake-up; 5. append audit events and save.
Any exception rolls the whole transaction back, and the live copy is dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.event_definitions.timer import DurationTimerEventDefinition
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.task import Task
from sqlalchemy.orm import Session

from engine import limits, metrics, queues, store
from engine.audit import AuditTrail, EventKind, instance_stream
from engine.caches import DefinitionCache, DefinitionInfo, LiveWorkflows
from engine.calendar import BusinessCalendar, load_calendar
from engine.clock import Clock, SystemClock, as_utc
from engine.compaction import SPIFF_MAX_DEPTH, compact
from engine.db import Database
from engine.errors import (
    ExpressionRefused,
    InstanceNotFound,
    InstanceNotRunning,
    ProcessFailed,
)
from engine.events import waits_for_timer
from engine.frontier import Frontier, scan, variables
from engine.models import Instance, InstanceStatus, TaskState
from engine.serialization import StateSerializer
from engine.store import InstanceRow, TaskRow

BUSINESS_TIME = "tradeflow_business_time"  # internal_data: the due time counts working time
RESUMES = 4  # engine runs a command may add for READY tasks the engine's iterator missed

# an instance id, or a function finding it in the transaction: by id, or already read
# (and locked) along with something else, as a task is
Target = int | Callable[[Session], "int | InstanceRow"]


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
        self.live = LiveWorkflows()
        # finished tasks are dropped from the task tree as each command settles
        # (engine/compaction.py); off only to compare with Spiff's own tree in tests
        self.compact_trees = True

    @contextmanager
    def command(
        self,
        target: Target,
        actor: str,
        guard: Callable[[Session], object] | None = None,
        *,
        name: str = "command",
    ) -> Iterator[Work]:
        """Lock, load, let the caller act, settle, save: all or nothing.

        ``target`` is an instance id, or a function finding it inside the transaction
        (from a task id, say). ``guard`` runs right after the lock, so a command that
        lost a race reports what it lost (the task was completed), not a consequence.
        """
        began = time.perf_counter()
        with (
            self.db.unit() as session,
            self.command_in(session, target, actor, guard) as work,
        ):
            yield work
        self.committed(work, name, began)

    def committed(self, work: Work, name: str, began: float) -> None:
        """After the commit: the next command may start from this workflow, the unit's
        time is measured, and the scheduler hears of the instance's next wake-up."""
        self.live.keep(work.instance, work.workflow)
        metrics.unit_of_work(name, time.perf_counter() - began)
        if self.on_wakeup is not None and work.instance.next_wakeup_at is not None:
            self.on_wakeup(work.instance.next_wakeup_at)

    @contextmanager
    def command_in(
        self,
        session: Session,
        target: Target,
        actor: str,
        guard: Callable[[Session], object] | None = None,
    ) -> Iterator[Work]:
        """The same, inside a transaction the caller owns (and commits or rolls back)."""
        found = target if isinstance(target, int) else target(session)
        if isinstance(found, InstanceRow):
            instance, instance_id = found, found.id
        else:
            instance_id = found
            instance = lock_instance(session, instance_id, self.db.is_postgres)
        if guard is not None:
            guard(session)
        if instance.status != InstanceStatus.RUNNING:
            raise InstanceNotRunning(
                f"instance {instance_id} is {instance.status.value}", instance=instance_id
            )
        definition = self.definitions.get(session, instance.definition_id)
        workflow = self.live.take(instance.id, instance.revision)
        if workflow is None:
            workflow = self.serializer.loads(instance.state, definition.specs)
        work = Work(self, session, instance, definition, workflow, actor)
        yield work
        work.settle()

    def load(self, session: Session, instance: Instance | InstanceRow) -> BpmnWorkflow:
        """A private copy of an instance's workflow, for reading."""
        definition = self.definitions.get(session, instance.definition_id)
        return self.serializer.loads(instance.state, definition.specs)


def lock_instance(session: Session, instance_id: int, postgres: bool) -> InstanceRow:
    instance = store.lock_instance(session.connection(), instance_id, postgres)
    if instance is None:
        raise InstanceNotFound(f"no instance {instance_id}", instance=instance_id)
    return instance


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
        instance: InstanceRow,
        definition: DefinitionInfo,
        workflow: BpmnWorkflow,
        actor: str,
    ) -> None:
        self.runtime = runtime
        self.session = session
        self.conn = session.connection()  # the hot path's statements run on it directly
        self.instance = instance
        self.definition = definition
        self.workflow = workflow
        self.actor = actor
        self.now: datetime = runtime.clock.now()
        self.budget = limits.Budget(runtime.limits)
        self.trail = AuditTrail(session)
        self.trail.seed(self.stream, instance.audit_seq, instance.audit_hash)
        self.tasks: dict[int, TaskRow] = {}  # task rows this command read or changed
        self.created: dict[int, TaskRow] = {}  # task rows this command inserted
        # written with the unit's last writes: new tasks whose ids were taken ahead (on
        # PostgreSQL, a round trip fewer), and (task id, role id) rows for the role queues
        self.spare_task_ids: list[int] = []
        self.new_tasks: list[TaskRow] = []
        self.new_roles: list[tuple[int, str]] = []
        # set by a command that answers with the instance's open tasks once settled
        self.report_open = False
        self.open_after: list[TaskRow] = []
        self.resumed = 0  # engine runs added for READY tasks the engine's iterator missed
        # open human tasks by Spiff task id: (row id, element id, name), from the markers
        # reconcile leaves on each READY user task, so no query is needed to find them
        frontier = scan(workflow)
        self.open_rows: dict[str, tuple[int, str, str | None]] = {
            str(t.id): (t.internal_data[queues.ROW], t.task_spec.bpmn_id, t.task_spec.bpmn_name)
            for t in frontier.ready_manual
            if queues.ROW in t.internal_data
        }
        # timer cycles as stored, checked before the engine runs: one stored faster than
        # the minimum (before it was checked) would catch up on every round it missed
        self.stored_cycles = [
            t for t in frontier.waiting if isinstance(t.internal_data.get("event_value"), dict)
        ]

    def task(self, row: TaskRow) -> TaskRow:
        """Track a task row; it is written back when the command settles."""
        return self.tasks.setdefault(row.id, row)

    def open_tasks(self) -> list[TaskRow]:
        """The instance's open tasks as they stand: rows this command holds, the rest read
        (one statement, and none when this command touched every open task)."""
        known = {**self.created, **self.tasks}
        ids = sorted(row_id for row_id, _, _ in self.open_rows.values())
        missing = [i for i in ids if i not in known]
        read = {row.id: row for row in store.tasks(self.conn, missing)} if missing else {}
        rows = [known.get(i) or read[i] for i in ids if i in known or i in read]
        rows = [row for row in rows if row.state == TaskState.OPEN]
        for row in rows:
            row.business_key = self.instance.business_key
        return rows

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
        """Run ``step`` then the engine on the command's budget; a diagram error becomes
        ProcessFailed, a budget spent BudgetExceeded (however Spiff wrapped it)."""
        if self.stored_cycles:
            for task in self.stored_cycles:
                _check_cycle(task, self.runtime.limits.min_timer_interval)
            self.stored_cycles = []
        budget = self.budget
        token = limits.enter(budget)
        try:
            if step is not None:
                step()
            self.workflow.do_engine_steps(will_complete_task=budget.step)
            budget.check_clock()  # raises if something swallowed the budget's error
        except Exception as exc:
            if budget.exceeded is not None:  # Spiff may have wrapped it, or a later error hid it
                raise budget.exceeded from None
            failure = _failure(exc, self.instance.id)
            if failure is exc:
                raise
            raise failure from exc
        finally:
            limits.leave(token)

    def _business_time(self, frontier: Frontier) -> None:
        for task in frontier.waiting:
            if (
                task.task_spec.bpmn_id in self.definition.business_timers
                and not task.internal_data.get(BUSINESS_TIME)
            ):
                _business_due(self, task)

    def settle(self) -> None:
        """Reconcile queues, subscriptions and wake-up; close the instance if done; save."""
        from engine import messages  # messages drives Work too

        for _ in range(20):  # each round may deliver one kept message
            frontier = scan(self.workflow)
            while frontier.stalled and not frontier.errors:
                frontier = self._resume(frontier)
            if frontier.errors:  # Spiff can leave a task in ERROR without raising
                spec = frontier.errors[0].task_spec
                raise ProcessFailed(
                    f"element '{spec.bpmn_id or spec.name}' failed", instance=self.instance.id
                )
            queues.reconcile(self, frontier)
            if not self.definition.messages or not messages.deliver_buffered(self, frontier):
                break
        queues.breach_overdue(self, frontier.ready_manual)
        if self.definition.business_timers:
            self._business_time(frontier)
        _office_dates(self, frontier)
        self.instance.next_wakeup_at = next_wakeup(frontier, self.runtime.limits.min_timer_interval)
        if self.workflow.completed and self.instance.status == InstanceStatus.RUNNING:
            self.instance.status = InstanceStatus.COMPLETED
            self.instance.ended_at = self.now
            self.audit(EventKind.INSTANCE_COMPLETED, data={"variables": variables(self.workflow)})
        if self.runtime.compact_trees:
            self._compact()
        self.instance.state = self.runtime.serializer.dumps(self.workflow)
        self.instance.updated_at = self.now
        self.instance.revision += 1
        self.instance.audit_seq, self.instance.audit_hash = self.trail.head(self.stream)
        with store.batch(self.conn):  # the writes that answer nothing, in one round trip
            store.insert_tasks_with_ids(self.conn, self.new_tasks)
            store.add_task_roles(self.conn, self.new_roles)
            for row in self.tasks.values():
                store.save_task(self.conn, row)
            store.save_instance(self.conn, self.instance)
            self.trail.write()
        if self.report_open:
            self.open_after = self.open_tasks()

    def _compact(self) -> None:
        """Drop the finished tasks nothing needs any more (engine/compaction.py). A tree
        still too deep for Spiff's iterator after that would stall the next command
        without a word: refused here instead."""
        depth = compact(self.workflow).depth
        if depth >= SPIFF_MAX_DEPTH:
            raise ProcessFailed(
                f"the task tree is {depth} levels deep even without its finished tasks; "
                f"the engine reaches {SPIFF_MAX_DEPTH - 1}",
                instance=self.instance.id,
            )

    def _resume(self, frontier: Frontier) -> Frontier:
        """READY tasks the engine runs itself were left READY: Spiff's iterator did not
        reach them (it stops at depth 1000: a tree grown by a loop, or saved before
        compaction). Compact the tree and run the engine again; a loop that grows the
        tree past that depth again and again within one command fails, loudly."""
        self.resumed += 1
        spec = frontier.stalled[0].task_spec
        if not self.runtime.compact_trees or self.resumed > RESUMES:
            raise ProcessFailed(
                f"element '{spec.bpmn_id or spec.name}' is ready but the engine cannot reach "
                f"it: the task tree is deeper than SpiffWorkflow's limit of {SPIFF_MAX_DEPTH} "
                "(a loop ran too many rounds)",
                instance=self.instance.id,
            )
        self._compact()
        self.run_engine()
        return scan(self.workflow)


def _business_due(work: Work, task: Task) -> None:
    """A duration timer marked ``calendar`` = ``business``: due after that much working
    time (Spiff counted wall-clock time when the timer started waiting)."""
    definition = getattr(task.task_spec, "event_definition", None)
    if not isinstance(definition, DurationTimerEventDefinition):
        return
    duration = work.workflow.script_engine.evaluate(task, definition.expression)
    try:
        due = work.runtime.calendar.add(work.now, str(duration))
    except ValueError as exc:  # P1M in business time, say: the diagram cannot go on
        raise ProcessFailed(f"element '{task.task_spec.bpmn_id}': {exc}") from exc
    task.internal_data["event_value"] = due.isoformat()
    task.internal_data[BUSINESS_TIME] = True


def _office_dates(work: Work, frontier: Frontier) -> None:
    """A timer date without an offset is in the office's time zone (the calendar's), not
    the server's: written back with its offset, so Spiff and the wake-up agree."""
    for task in frontier.waiting:
        value = task.internal_data.get("event_value")
        if not isinstance(value, str) or not waits_for_timer(task.task_spec):
            continue
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            continue
        if (moment.tzinfo is None and "T" in value) or (moment.tzinfo is None and len(value) == 10):
            aware = moment.replace(tzinfo=work.runtime.calendar.timezone)
            task.internal_data["event_value"] = aware.isoformat()


def next_wakeup(frontier: Frontier, min_interval: float = 0.0) -> datetime | None:
    """When the instance next needs the scheduler: its earliest timer or SLA due time.
    A timer cycle repeating more often than ``min_interval`` seconds (one computed from
    the data, or stored before the minimum was checked at deploy) fails the command."""
    due = [d for d in (_timer_due(t, min_interval) for t in frontier.waiting) if d is not None]
    sla = queues.next_due(frontier.ready_manual)
    if sla is not None:
        due.append(sla)
    return min(due) if due else None


def _timer_due(task: Task, min_interval: float) -> datetime | None:
    if not waits_for_timer(task.task_spec):
        return None
    value = task.internal_data.get("event_value")
    if isinstance(value, dict):  # a cycle: {"cycles": n, "next": iso, "duration": s}
        if value.get("cycles") == 0:
            return None
        _check_cycle(task, min_interval)
        value = value.get("next")
    if not isinstance(value, str):
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:  # a date Spiff will parse its own way; fire on the next sweep
        return None


def _check_cycle(task: Task, min_interval: float) -> None:
    """A waiting timer cycle must not repeat more often than ``min_interval`` seconds."""
    value = task.internal_data.get("event_value")
    every = value.get("duration") if isinstance(value, dict) else None
    if isinstance(every, int | float) and every < min_interval and value.get("cycles") != 0:
        spec = task.task_spec
        raise ProcessFailed(
            f"element '{spec.bpmn_id or spec.name}': timer cycle "
            f"{limits.cycle_too_fast(every, min_interval)}"
        )


def _failure(exc: Exception, instance_id: int) -> Exception:
    """What a failed engine run raises: diagram errors become ProcessFailed."""
    if isinstance(exc, ProcessFailed):
        return exc
    if isinstance(exc, (SpiffWorkflowException, ExpressionRefused)):
        return ProcessFailed(_describe(exc), instance=instance_id)
    if isinstance(exc, (ArithmeticError, LookupError, TypeError, ValueError, NameError)):
        return ProcessFailed(f"{type(exc).__name__}: {exc}", instance=instance_id)
    if isinstance(exc, RecursionError):  # Spiff walks some ancestor chains recursively
        why = f"the task tree is too deep for the engine ({exc})"
        return ProcessFailed(why, instance=instance_id)
    return exc


def _describe(exc: Exception) -> str:
    task = getattr(exc, "task", None)
    element = getattr(getattr(task, "task_spec", None), "bpmn_id", None)
    message = getattr(exc, "error", None) or str(exc)
    return f"element '{element}': {message}" if element else str(message)

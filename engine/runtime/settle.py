"""Settling: what every command does after it changed its workflow, as a list of steps.

The steps run in order on a ``Settling`` (the command's Work and the workflow's frontier):

1. ``until_quiet``: route the open user tasks to their queues and keep the message
   subscriptions true; hand over kept messages the instance now waits for; repeat until
   none is delivered (each delivery runs the engine on the command's budget, so a flood of
   kept messages ends the command cleanly rather than the service);
2. ``breaches``: record the SLAs that have passed and escalate them;
3. ``business_time``: timers counted in working time get their due time;
4. ``office_dates``: timer dates without an offset are in the office's time zone;
5. ``wakeup``: the instance's next wake-up (its earliest timer or SLA; a timer that
   fired and waits again at once not before the minimum interval);
6. ``close``: an instance whose workflow is done is completed;
7. ``compact``: finished tasks nothing needs any more leave the task tree;
8. ``save``: the state, the task rows, the audit events, in one round trip;
9. ``report``: the open tasks, for a command that answers with them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from SpiffWorkflow.bpmn.specs.event_definitions.timer import DurationTimerEventDefinition
from SpiffWorkflow.task import Task

from engine import queues
from engine.audit import EventKind
from engine.clock import as_utc
from engine.errors import ProcessFailed
from engine.execution import (
    SPIFF_MAX_DEPTH,
    Frontier,
    compact,
    mark_stored,
    scan,
    stored_parts,
    variables,
)
from engine.modeling import waits_for_timer
from engine.runtime import delivery, stepping
from engine.runtime.work import Work
from engine.storage import InstanceStatus, TaskRow, TaskState, store

if TYPE_CHECKING:
    from engine.runtime.unit import Runtime

log = logging.getLogger("tradeflow.settle")

BUSINESS_TIME = "tradeflow_business_time"  # internal_data: the due time counts working time
RESUMES = 4  # engine runs a command may add for READY tasks the engine's iterator missed
RETRY = timedelta(seconds=1)  # an instance still due after its timers fired: look again


@dataclass
class Settling:
    runtime: Runtime
    work: Work
    frontier: Frontier


Step = Callable[[Settling], None]


def settle(runtime: Runtime, work: Work) -> None:
    """Finish a command: run every step of ``STEPS`` in order."""
    settling = Settling(runtime, work, scan(work.workflow))
    for step in STEPS:
        step(settling)


def until_quiet(s: Settling) -> None:
    work = s.work
    while True:
        s.frontier = scan(work.workflow)
        while s.frontier.stalled and not s.frontier.errors:
            s.frontier = _resume(s)
        if s.frontier.errors:  # Spiff can leave a task in ERROR without raising
            spec = s.frontier.errors[0].task_spec
            raise ProcessFailed(
                f"element '{spec.bpmn_id or spec.name}' failed", instance=work.instance.id
            )
        queues.reconcile(work, s.frontier)
        if not work.definition.messages or not delivery.deliver_kept(work, s.frontier):
            return
        work.budget.check_clock()  # each delivery ran the engine on the budget's steps


def breaches(s: Settling) -> None:
    queues.breach_overdue(s.work, s.frontier.ready_manual)


def business_time(s: Settling) -> None:
    """A duration timer marked ``calendar`` = ``business``: due after that much working
    time (Spiff counted wall-clock time when the timer started waiting)."""
    work = s.work
    if not work.definition.business_timers:
        return
    for task in s.frontier.waiting:
        if task.task_spec.bpmn_id in work.definition.business_timers and not task.internal_data.get(
            BUSINESS_TIME
        ):
            _business_due(work, task)


def office_dates(s: Settling) -> None:
    """A timer date without an offset is in the office's time zone (the calendar's), not
    the server's: written back with its offset, so Spiff and the wake-up agree."""
    for task in s.frontier.waiting:
        value = task.internal_data.get("event_value")
        if not isinstance(value, str) or not waits_for_timer(task.task_spec):
            continue
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            continue
        if moment.tzinfo is None and ("T" in value or len(value) == 10):
            aware = moment.replace(tzinfo=s.work.calendar.timezone)
            task.internal_data["event_value"] = aware.isoformat()


def wakeup(s: Settling) -> None:
    """The next wake-up: the earliest timer or SLA. A duration or date timer this command
    fired that waits again at once (a loop; its wait computed from the data, else deploy
    checked it) is not due before the minimum interval: a loop of millisecond waits must
    not flood. Cycles are left alone (checked against the minimum, and catching up on
    rounds missed counts from their schedule, not from now)."""
    work = s.work
    min_interval = work.budget.limits.min_timer_interval
    floor = work.now + timedelta(seconds=min_interval)
    due: list[datetime] = []
    for task in s.frontier.waiting:
        found = _timer_due(task, min_interval)
        if found is None:
            continue
        again = task.task_spec.bpmn_id in work.fired_timers
        if again and found < floor and not isinstance(task.internal_data.get("event_value"), dict):
            log.warning(
                "instance %s: timer '%s' fired and waits again in under %g s; due in %g s",
                work.instance.id,
                task.task_spec.bpmn_id,
                min_interval,
                min_interval,
            )
            found = floor
        due.append(found)
    sla = queues.next_due(s.frontier.ready_manual)
    if sla is not None:
        due.append(sla)
    next_due = min(due) if due else None
    if work.firing and next_due is not None and as_utc(next_due) <= work.now:
        # a date Spiff reads its own way: claimed again at once, for ever, if left due
        log.warning("instance %s is still due after firing; retried shortly", work.instance.id)
        next_due = work.now + RETRY
    work.instance.next_wakeup_at = next_due


def close(s: Settling) -> None:
    work = s.work
    if work.workflow.completed and work.instance.status == InstanceStatus.RUNNING:
        work.instance.status = InstanceStatus.COMPLETED
        work.instance.ended_at = work.now
        work.audit(EventKind.INSTANCE_COMPLETED, data={"variables": variables(work.workflow)})


def compact_tree(s: Settling) -> None:
    if s.runtime.compact_trees:
        _compact(s.work)


def save(s: Settling) -> None:
    work, instance = s.work, s.work.instance
    parts: dict[str, str] = {}
    instance.state = s.runtime.serializer.dumps(work.workflow, parts)
    # only what changed: the parts not stored yet, and those no longer referred to
    before = stored_parts(work.workflow)
    new = {key: body for key, body in parts.items() if key not in before}
    work.writes.save_parts(instance.id, new, [key for key in before if key not in parts])
    instance.updated_at = max(work.now, work.trail_floor)  # its trail's last time
    instance.revision += 1
    instance.audit_seq, instance.audit_hash = work.trail.head(work.stream)
    work.writes.save_instance(instance)
    work.trail.write(work.writes)
    work.writes.flush()  # what answers nothing, in one round trip
    mark_stored(work.workflow, parts)  # written (committed with the unit, or dropped with it)


def report(s: Settling) -> None:
    if s.work.report_open:
        s.work.open_after = open_tasks(s.work)


STEPS: tuple[Step, ...] = (
    until_quiet,
    breaches,
    business_time,
    office_dates,
    wakeup,
    close,
    compact_tree,
    save,
    report,
)


def open_tasks(work: Work) -> list[TaskRow]:
    """The instance's open tasks as they stand: rows this command holds, the rest read
    (one statement, and none when this command touched every open task)."""
    known = {**work.created, **work.tasks}
    ids = sorted(row_id for row_id, _, _ in work.open_rows.values())
    missing = [i for i in ids if i not in known]
    read = {row.id: row for row in store.tasks(work.conn, missing)} if missing else {}
    rows = [known.get(i) or read[i] for i in ids if i in known or i in read]
    rows = [row for row in rows if row.state == TaskState.OPEN]
    for row in rows:
        row.business_key = work.instance.business_key
    return rows


def _compact(work: Work) -> None:
    """Drop the finished tasks nothing needs any more (engine/execution/compaction.py). A tree
    still too deep for Spiff's iterator after that would stall the next command
    without a word: refused here instead."""
    depth = compact(work.workflow).depth
    if depth >= SPIFF_MAX_DEPTH:
        raise ProcessFailed(
            f"the task tree is {depth} levels deep even without its finished tasks; "
            f"the engine reaches {SPIFF_MAX_DEPTH - 1}",
            instance=work.instance.id,
        )


def _resume(s: Settling) -> Frontier:
    """READY tasks the engine runs itself were left READY: Spiff's iterator did not
    reach them (it stops at depth 1000: a tree grown by a loop, or saved before
    compaction). Compact the tree and run the engine again; a loop that grows the
    tree past that depth again and again within one command fails, loudly."""
    work = s.work
    work.resumed += 1
    spec = s.frontier.stalled[0].task_spec
    if not s.runtime.compact_trees or work.resumed > RESUMES:
        raise ProcessFailed(
            f"element '{spec.bpmn_id or spec.name}' is ready but the engine cannot reach "
            f"it: the task tree is deeper than SpiffWorkflow's limit of {SPIFF_MAX_DEPTH} "
            "(a loop ran too many rounds)",
            instance=work.instance.id,
        )
    _compact(work)
    stepping.run(work)
    return scan(work.workflow)


def _business_due(work: Work, task: Task) -> None:
    definition = getattr(task.task_spec, "event_definition", None)
    if not isinstance(definition, DurationTimerEventDefinition):
        return
    duration = work.workflow.script_engine.evaluate(task, definition.expression)
    try:
        due = work.calendar.add(work.now, str(duration))
    except ValueError as exc:  # P1M in business time, say: the diagram cannot go on
        raise ProcessFailed(f"element '{task.task_spec.bpmn_id}': {exc}") from exc
    task.internal_data["event_value"] = due.isoformat()
    task.internal_data[BUSINESS_TIME] = True


def _timer_due(task: Task, min_interval: float) -> datetime | None:
    if not waits_for_timer(task.task_spec):
        return None
    value = task.internal_data.get("event_value")
    if isinstance(value, dict):  # a cycle: {"cycles": n, "next": iso, "duration": s}
        if value.get("cycles") == 0:
            return None
        stepping.check_cycle(task, min_interval)
        value = value.get("next")
    if not isinstance(value, str):
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:  # a date Spiff will parse its own way; fire on the next sweep
        return None

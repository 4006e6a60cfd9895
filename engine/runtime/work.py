"""What one command on one instance holds while it runs: plain data, no behaviour of its
own beyond bookkeeping. The unit of work (unit.py) makes it, the command changes it,
settling (settle.py) finishes it and writes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from SpiffWorkflow.bpmn import BpmnWorkflow
    from SpiffWorkflow.task import Task
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

    from engine.audit import AuditTrail, EventKind
    from engine.execution import Budget, decisions
    from engine.runtime.caches import DefinitionInfo
    from engine.storage import InstanceRow, TaskRow, Writes
    from engine.timers import BusinessCalendar


_LONG_AGO = datetime.min.replace(tzinfo=UTC)


@dataclass(eq=False)
class Work:
    """One command in progress on one instance."""

    session: Session
    conn: Connection  # the session's: the hot path's reads run on it directly
    writes: Writes  # the unit's pending writes: every row this command adds or changes
    instance: InstanceRow
    definition: DefinitionInfo
    workflow: BpmnWorkflow
    actor: str
    now: datetime
    budget: Budget  # steps, seconds and built data left (limits.py)
    decisions: decisions.Source  # the newest table of a decision (execution/decisions.py)
    calendar: BusinessCalendar
    trail: AuditTrail
    stream: str  # the instance's audit stream
    # open human tasks by Spiff task id: (row id, element id, name), from the markers
    # routing leaves on each READY user task, so no query is needed to find them
    open_rows: dict[str, tuple[int, str, str | None]] = field(default_factory=dict)
    # timer cycles as stored, checked before the engine first runs: one stored faster
    # than the minimum (before deploy checked it) would catch up on every round it missed
    stored_cycles: list[Task] = field(default_factory=list)
    tasks: dict[int, TaskRow] = field(default_factory=dict)  # rows read or changed
    created: dict[int, TaskRow] = field(default_factory=dict)  # rows made
    # set by a command that answers with the instance's open tasks once settled
    report_open: bool = False
    open_after: list[TaskRow] = field(default_factory=list)
    # set by a command that fires timers: an instance still due after firing (a date
    # Spiff reads its own way, or nothing fired) is looked at again a little later, not
    # claimed again at once for ever
    firing: bool = False
    # the timer elements it fired: one waiting again in the same command (a loop) is not
    # due before the minimum interval
    fired_timers: set[str] = field(default_factory=set)
    resumed: int = 0  # engine runs added for READY tasks the engine's iterator missed
    # the time of the instance's last change: its trail's events are never stamped before
    # it, so a step back of the clock can't put them out of order (deadlines, task times
    # and the rest go by the clock)
    trail_floor: datetime = _LONG_AGO

    def task(self, row: TaskRow) -> TaskRow:
        """Track a task row; it is written back when the command settles."""
        held = self.tasks.setdefault(row.id, row)
        self.writes.save_task(held)
        return held

    def audit(self, kind: EventKind, **fields: Any) -> None:
        """Append an event to the instance's trail (written as the command settles)."""
        self.trail.append(
            self.stream,
            kind,
            at=max(self.now, self.trail_floor),
            actor=fields.pop("actor", self.actor),
            instance_id=self.instance.id,
            **fields,
        )

"""Processes that start on a timer: a start event with timeDate (once, then), timeDuration
(once, that long after the deployment) or timeCycle (``R/P1M``: every month, each round
an instance of its own, as in Camunda).

Deploying a process writes when it next starts (one row per process key: a new version
replaces the old one's schedule, and a version without a timer start removes it). The
scheduler claims a due row, starts the instance and moves the row on, in one transaction:
each round starts exactly once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from SpiffWorkflow.bpmn.specs.defaults import StartEvent
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine.clock import as_utc
from engine.errors import DiagramInvalid, Problem
from engine.expressions import evaluate_expression
from engine.models import StartTimer


def timer_start(spec: Any) -> tuple[str, TimerEventDefinition] | None:
    """The process's start event that waits for a timer, if any."""
    for task_spec in spec.task_specs.values():
        definition = getattr(task_spec, "event_definition", None)
        if isinstance(task_spec, StartEvent) and isinstance(definition, TimerEventDefinition):
            return str(task_spec.bpmn_id), definition
    return None


def first_round(
    definition: TimerEventDefinition, now: datetime
) -> tuple[datetime, int, float | None]:
    """(when it first starts, how many rounds (-1: for ever), seconds between rounds)."""
    value = evaluate_expression(definition.expression, {})
    if not isinstance(value, str):
        raise ValueError("a timer start event needs a fixed ISO 8601 value, not data")
    if isinstance(definition, TimeDateEventDefinition):
        return as_utc(TimerEventDefinition.get_datetime(value)), 1, None
    if isinstance(definition, DurationTimerEventDefinition):
        parsed = TimerEventDefinition.parse_iso_duration(value)
        return now + TimerEventDefinition.get_timedelta_from_start(parsed, now), 1, None
    if isinstance(definition, CycleTimerEventDefinition):
        cycles, start, every = TimerEventDefinition.parse_iso_recurring_interval(value)
        parts = value.strip().upper().split("/")
        if len(parts) == 2 and parts[1].startswith("P"):  # "R/P1M": a period from now
            start = now + every  # by the engine's clock (Spiff reads the system's)
        return as_utc(start), cycles, every.total_seconds()
    raise ValueError(f"unsupported timer {type(definition).__name__}")


def schedule(
    session: Session, key: str, definition_id: int, spec: Any, file: str, now: datetime
) -> None:
    """At deploy: the process's start timer replaces its key's previous one (or none)."""
    session.execute(delete(StartTimer).where(StartTimer.definition_key == key))
    found = timer_start(spec)
    if found is None:
        return
    element_id, definition = found
    try:
        next_at, cycles, every = first_round(definition, now)
    except Exception as exc:  # Spiff's parsers raise bare Exception on bad ISO text
        raise DiagramInvalid(
            [Problem(f"timer start event refused: {exc}", file, element_id)]
        ) from exc
    if cycles == 0:
        return
    session.add(
        StartTimer(
            definition_key=key,
            definition_id=definition_id,
            element_id=element_id,
            next_at=next_at,
            cycles_left=cycles,
            every_seconds=every,
        )
    )


def claim_due(session: Session, now: datetime, postgres: bool) -> StartTimer | None:
    query = select(StartTimer).where(StartTimer.next_at <= now).order_by(StartTimer.next_at)
    if postgres:
        query = query.with_for_update(skip_locked=True)
    return session.scalars(query.limit(1)).first()


def advance(session: Session, row: StartTimer) -> None:
    """After a round: the next one, or the schedule ends."""
    if row.cycles_left > 0:
        row.cycles_left -= 1
    if row.cycles_left == 0 or not row.every_seconds:
        session.delete(row)
        return
    row.next_at = as_utc(row.next_at) + timedelta(seconds=row.every_seconds)

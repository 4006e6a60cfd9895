"""Processes that start on a timer: a start event with timeDate (once, then), timeDuration
(once, that long after the deployment) or timeCycle (``R/P1M``: every month, each round
an instance of its own, as in Camunda).

Deploying a process writes when it next starts (one row per process key: a new version
replaces the old one's schedule, and a version without a timer start removes it). The
scheduler claims a due row, starts the instance and moves the row on, in one transaction:
each round starts exactly once.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
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
from engine.execution import cycle_too_fast, evaluate_expression
from engine.storage import StartTimer
from engine.timers.calendar import load_calendar


def timer_start(spec: Any) -> tuple[str, TimerEventDefinition] | None:
    """The process's start event that waits for a timer, if any."""
    for task_spec in spec.task_specs.values():
        definition = getattr(task_spec, "event_definition", None)
        if isinstance(task_spec, StartEvent) and isinstance(definition, TimerEventDefinition):
            return str(task_spec.bpmn_id), definition
    return None


@dataclass(frozen=True)
class Schedule:
    first: datetime
    cycles: int  # -1: for ever
    every_seconds: float | None = None
    every_months: int | None = None  # P1M, P1Y: calendar months, not a fixed span


def first_round(definition: TimerEventDefinition, now: datetime, zone: tzinfo) -> Schedule:
    """When a timer start first goes off, how often, how many times. A date without an
    offset is in ``zone`` (the office's, from the calendar configuration)."""
    value = evaluate_expression(definition.expression, {})
    if not isinstance(value, str):
        raise ValueError("a timer start event needs a fixed ISO 8601 value, not data")
    if isinstance(definition, TimeDateEventDefinition):
        return Schedule(_aware(value, zone), 1)
    if isinstance(definition, DurationTimerEventDefinition):
        parsed = TimerEventDefinition.parse_iso_duration(value)
        return Schedule(now + TimerEventDefinition.get_timedelta_from_start(parsed, now), 1)
    if isinstance(definition, CycleTimerEventDefinition):
        cycles, start, every = TimerEventDefinition.parse_iso_recurring_interval(value)
        parts = value.strip().upper().split("/")
        period = next((p for p in parts[1:] if p.startswith("P")), "")
        months = _months(period)
        if len(parts) == 2 and period:  # "R/P1M": a period from now
            first = add_months(now, months) if months else now + every
        else:
            dates = [p for p in parts[1:] if not p.startswith("P")]
            first = _aware(dates[0], zone) if dates else as_utc(start)
        return Schedule(first, cycles, None if months else every.total_seconds(), months)
    raise ValueError(f"unsupported timer {type(definition).__name__}")


def _aware(text: str, zone: tzinfo) -> datetime:
    moment = datetime.fromisoformat(text)
    return as_utc(moment if moment.tzinfo else moment.replace(tzinfo=zone))


def _months(period: str) -> int | None:
    """P3M -> 3, P1Y -> 12; None for any period with days, weeks or a time part."""
    found = re.fullmatch(r"P(?:(\d+)Y)?(?:(\d+)M)?", period)
    if not found or not any(found.groups()):
        return None
    years, months = (int(g) if g else 0 for g in found.groups())
    return years * 12 + months or None


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
        plan = first_round(definition, now, load_calendar().timezone)
    except Exception as exc:  # Spiff's parsers raise bare Exception on bad ISO text
        raise DiagramInvalid(
            [Problem(f"timer start event refused: {exc}", file, element_id)]
        ) from exc
    if plan.cycles == 0:
        return
    session.add(
        StartTimer(
            definition_key=key,
            definition_id=definition_id,
            element_id=element_id,
            next_at=plan.first,
            cycles_left=plan.cycles,
            every_seconds=plan.every_seconds,
            every_months=plan.every_months,
        )
    )


def claim_due(session: Session, now: datetime) -> StartTimer | None:
    """The schedule due first, locked (PostgreSQL: one another process holds is skipped)."""
    query = select(StartTimer).where(StartTimer.next_at <= now).order_by(StartTimer.next_at)
    return session.scalars(query.limit(1).with_for_update(skip_locked=True)).first()


def advance(session: Session, row: StartTimer, now: datetime) -> None:
    """After a round: the next one still ahead (rounds missed while the service was down
    start once, not once each), or the schedule ends."""
    if row.cycles_left > 0:
        row.cycles_left -= 1
    if row.cycles_left == 0 or not (row.every_seconds or row.every_months):
        session.delete(row)
        return
    next_at = as_utc(row.next_at)
    if row.every_months:
        while next_at <= now:  # a month at a time: a few hundred rounds in decades down
            next_at = add_months(next_at, row.every_months)
    elif next_at <= now:  # counted, not stepped: a short cycle after a long outage
        every = timedelta(seconds=row.every_seconds or 0)
        next_at += every * ((now - next_at) // every + 1)
    row.next_at = next_at


def too_fast(row: StartTimer, min_interval: float) -> str | None:
    """Why a stored schedule repeats more often than ``min_interval`` seconds, or None.
    (Deploy refuses such cycles; a schedule stored before that was checked must not
    start hundreds of instances a second.)"""
    every = row.every_seconds
    if every is None or row.every_months or every >= min_interval:
        return None
    return cycle_too_fast(every, min_interval)


def skip_round(session: Session, row_id: int, due: datetime, now: datetime) -> None:
    """A round that could not start: move that same schedule on (if nobody else has)."""
    query = select(StartTimer).where(StartTimer.id == row_id).with_for_update()
    row = session.scalars(query).first()
    if row is not None and as_utc(row.next_at) == due:
        advance(session, row, now)


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` later (the month's last day where it is shorter)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)

"""Where orders wait: per process element, how long its tasks waited to be taken
(created → claimed) and were worked on (claimed → completed), how often a step came back
(rework loops) and how often it missed its time limit.

Read off the task rows the unit of work keeps (each row is one occurrence of a step, with
its times), not replayed from the audit trail: the rows are the trail's summary, written
in the same transactions.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.clock import as_utc
from engine.models import Definition, HumanTask, HumanTaskRole, Instance, TaskState


@dataclass(frozen=True)
class ElementQuery:
    definition: str | None = None
    since: datetime | None = None  # tasks created in [since, until)
    until: datetime | None = None
    role: str | None = None


@dataclass(frozen=True)
class ElementStats:
    element_id: str
    name: str | None
    count: int  # tasks created at this element
    completed: int
    wait_p50: float | None  # seconds, created -> claimed
    wait_p90: float | None
    work_p50: float | None  # seconds, claimed -> completed
    work_p90: float | None
    reworked: int  # occurrences after the first in the same instance: the loops
    overdue: int  # finished after their due time, or still open past it


def percentile(values: list[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least q of them at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def elements(session: Session, query: ElementQuery, now: datetime) -> list[ElementStats]:
    """Per element of the matching tasks, busiest first."""
    stmt = select(
        HumanTask.instance_id,
        HumanTask.element_id,
        HumanTask.name,
        HumanTask.state,
        HumanTask.created_at,
        HumanTask.claimed_at,
        HumanTask.ended_at,
        HumanTask.due_at,
        HumanTask.breached_at,
    ).order_by(HumanTask.id)
    if query.definition is not None:
        stmt = stmt.join(Instance, Instance.id == HumanTask.instance_id).join(
            Definition, Definition.id == Instance.definition_id
        )
        stmt = stmt.where(Definition.key == query.definition)
    if query.since is not None:
        stmt = stmt.where(HumanTask.created_at >= as_utc(query.since))
    if query.until is not None:
        stmt = stmt.where(HumanTask.created_at < as_utc(query.until))
    if query.role is not None:
        stmt = stmt.where(
            HumanTask.id.in_(
                select(HumanTaskRole.task_id).where(HumanTaskRole.role_id == query.role)
            )
        )
    waits: dict[str, list[float]] = defaultdict(list)
    works: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    completed: dict[str, int] = defaultdict(int)
    reworked: dict[str, int] = defaultdict(int)
    overdue: dict[str, int] = defaultdict(int)
    names: dict[str, str | None] = {}
    seen: set[tuple[int, str]] = set()
    for row in session.execute(stmt):
        element = row.element_id
        names.setdefault(element, row.name)
        counts[element] += 1
        if (row.instance_id, element) in seen:
            reworked[element] += 1
        seen.add((row.instance_id, element))
        created = as_utc(row.created_at)
        claimed = as_utc(row.claimed_at) if row.claimed_at else None
        ended = as_utc(row.ended_at) if row.ended_at else None
        if claimed is not None:
            waits[element].append((claimed - created).total_seconds())
        if row.state == TaskState.COMPLETED and ended is not None:
            completed[element] += 1
            if claimed is not None:
                works[element].append((ended - claimed).total_seconds())
        due = as_utc(row.due_at) if row.due_at else None
        finished = ended if ended is not None else now
        if row.breached_at is not None or (due is not None and finished > due):
            overdue[element] += 1
    stats = [
        ElementStats(
            element_id=element,
            name=names[element],
            count=counts[element],
            completed=completed[element],
            wait_p50=percentile(waits[element], 0.5),
            wait_p90=percentile(waits[element], 0.9),
            work_p50=percentile(works[element], 0.5),
            work_p90=percentile(works[element], 0.9),
            reworked=reworked[element],
            overdue=overdue[element],
        )
        for element in counts
    ]
    return sorted(stats, key=lambda s: (-s.count, s.element_id))

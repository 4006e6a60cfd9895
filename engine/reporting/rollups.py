"""Step measures at scale: the tasks that ended in a week, summed per step and slice.

A million-event history holds some 300,000 task rows; reading them all for every
dashboard costs seconds. Once a week (Monday to Monday, UTC) is over no more of its tasks
can end, so its tasks are summed once into ``step_week`` rows (per definition, element,
candidate roles, who completed, customer grade): counts, and each task's waiting and
working time, kept exactly (packed doubles per row) so percentiles stay exact. The
scheduler's sweep sums the weeks as they close (``roll_up``); the migration that added
the table summed the past. (Days were tried first: sliced by user and grade, a day's
rows held barely more than one task each, and read no faster than the tasks.)

Readers (``gather``) combine three parts, and so answer exactly whatever has been summed:
``step_week`` rows for the whole weeks of the period that are summed; the task rows that
ended in the rest of the period (the current week, partial weeks at its edges); and the
open tasks, as they stand. A test holds the answers equal with and without summaries.
"""

from __future__ import annotations

import sys
from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    and_,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import aliased

from engine.clock import as_utc
from engine.storage import CaseFacts, HumanTask, StepWeek, SummaryMark, TaskState, epoch

MARK = "step_week"
_WEEKS: Table = StepWeek.__table__  # type: ignore[assignment]
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class Slice:
    definition: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    role: str | None = None
    user: str | None = None
    grade: str | None = None


@dataclass
class Step:
    """One element's tasks in a slice."""

    name: str | None = None
    ended: int = 0
    completed: int = 0
    reworked: int = 0
    limited: int = 0
    met: int = 0
    late: int = 0  # ended past their limit, and open ones past it now
    open: int = 0
    waits: list[float] = field(default_factory=list)
    works: list[float] = field(default_factory=list)


@dataclass
class Gathered:
    steps: dict[str, Step] = field(default_factory=lambda: defaultdict(Step))
    # role -> open, completed, overdue
    roles: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: {"open": 0, "completed": 0, "overdue": 0})
    )


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def monday(day: date) -> date:
    """The first day of ``day``'s week."""
    return day - timedelta(days=day.weekday())


def _rework() -> Any:
    earlier = aliased(HumanTask)
    return exists().where(
        earlier.instance_id == HumanTask.instance_id,
        earlier.element_id == HumanTask.element_id,
        earlier.id < HumanTask.id,
    )


def _task_rows(where: list[Any]) -> Any:
    return (
        select(
            HumanTask.element_id,
            HumanTask.name,
            HumanTask.candidate_roles,
            HumanTask.state,
            HumanTask.assignee,
            HumanTask.completed_by,
            # as seconds since 1970 (engine/storage/timesql.py): numbers, not datetime objects
            epoch(HumanTask.created_at).label("created"),
            epoch(HumanTask.claimed_at).label("claimed"),
            epoch(HumanTask.ended_at).label("ended"),
            epoch(HumanTask.due_at).label("due"),
            HumanTask.breached_at.is_not(None).label("breached"),
            _rework().label("reworked"),
            CaseFacts.definition_key,
            CaseFacts.grade,
        )
        .outerjoin(CaseFacts, CaseFacts.instance_id == HumanTask.instance_id)
        .where(*where)
    )


def _late(row: Any, now: float) -> bool:
    """Past the limit: a recorded breach, ended after it, or open at or after it (the
    inbox's rule, queues.is_overdue; here on seconds since 1970)."""
    if row.breached:
        return True
    if row.due is None:
        return False
    if row.ended is None:
        return bool(round(now - row.due, 3) >= 0)
    return bool(round(row.ended - row.due, 3) > 0)


def _seconds(start: float, end: float) -> float:
    return round(end - start, 3)


def _week(moment: float) -> date:
    return monday(_EPOCH + timedelta(days=int(moment // 86400)))


def _add_ended(step: Step, row: Any, now: float) -> None:
    step.name = step.name or row.name
    step.ended += 1
    step.reworked += 1 if row.reworked else 0
    late = _late(row, now)
    step.late += 1 if late else 0
    if row.state == TaskState.COMPLETED:
        step.completed += 1
        if row.due is not None:
            step.limited += 1
            step.met += 0 if late else 1
        if row.claimed is not None:
            step.waits.append(_seconds(row.created, row.claimed))
            step.works.append(_seconds(row.claimed, row.ended))


def _pack(values: list[float]) -> bytes:
    """Sorted (the reader's sort then merges runs), as little-endian doubles."""
    packed = array("d", sorted(values))
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def _unpack(blob: bytes) -> array[float]:
    values = array("d")
    values.frombytes(blob)
    if sys.byteorder == "big":
        values.byteswap()
    return values


def summed_until(conn: Connection) -> date | None:
    return conn.scalar(select(SummaryMark.until).where(SummaryMark.name == MARK))


# A week is summed this long after it ends: a command that took its time at 23:59:59 may
# commit a little later, or on a server whose clock is a little behind.
GRACE = timedelta(hours=1)


def roll_up(conn: Connection, now: datetime) -> int:
    """Sum the weeks that are over and not summed yet; answers how many tasks."""
    today = monday((as_utc(now) - GRACE).date())  # the week under way
    moment = as_utc(now).timestamp()
    lock = select(SummaryMark.until).where(SummaryMark.name == MARK)
    start = conn.scalar(lock.with_for_update())
    if start is None:  # the first time: from the first task that ended, if any has
        first = conn.scalar(
            select(func.min(HumanTask.ended_at)).where(HumanTask.ended_at.is_not(None))
        )
        if first is None or monday(as_utc(first).date()) >= today:
            return 0
        start = monday(as_utc(first).date())
        conn.execute(insert(SummaryMark.__table__), {"name": MARK, "until": start})  # type: ignore[arg-type]
    if start >= today:
        return 0
    rows = conn.execute(
        _task_rows([HumanTask.ended_at >= _midnight(start), HumanTask.ended_at < _midnight(today)])
    )
    groups: dict[tuple[Any, ...], Step] = defaultdict(Step)
    tasks = 0
    for row in rows:
        key = (
            _week(row.ended),
            row.definition_key or "",
            row.element_id,
            row.candidate_roles,
            row.completed_by or "",
            row.grade or "",
        )
        _add_ended(groups[key], row, moment)
        tasks += 1
    batch = [
        {
            "week": week, "definition_key": key, "element_id": element, "roles": roles,
            "user_name": user, "grade": grade, "name": s.name, "ended": s.ended,
            "completed": s.completed, "reworked": s.reworked, "limited": s.limited,
            "met": s.met, "late": s.late, "waits": _pack(s.waits),
            "works": _pack(s.works),
        }
        for (week, key, element, roles, user, grade), s in groups.items()
    ]  # fmt: skip
    for i in range(0, len(batch), 5000):
        conn.execute(insert(_WEEKS), batch[i : i + 5000])
    conn.execute(update(SummaryMark.__table__).where(SummaryMark.name == MARK).values(until=today))  # type: ignore[arg-type]
    return tasks


def resum(conn: Connection, now: datetime) -> int:
    """Forget the summaries and sum every past week again (after a change to how they
    are made); answers how many tasks."""
    conn.execute(_WEEKS.delete())
    conn.execute(SummaryMark.__table__.delete())  # type: ignore[attr-defined]
    return roll_up(conn, now)


def _week_filters(query: Slice) -> list[Any]:
    found: list[Any] = []
    if query.definition is not None:
        found.append(_WEEKS.c.definition_key == query.definition)
    if query.grade is not None:
        found.append(_WEEKS.c.grade == query.grade)
    if query.user is not None:
        found.append(_WEEKS.c.user_name == query.user)
    return found


def case_filters(query: Slice, *, by_owner: bool = False) -> list[Any]:
    """The slice's filters on its cases (case_facts): definition, grade, and with
    ``by_owner`` the case's owner as the user (task rows filter on who did them instead)."""
    found: list[Any] = []
    if query.definition is not None:
        found.append(CaseFacts.definition_key == query.definition)
    if query.grade is not None:
        found.append(CaseFacts.grade == query.grade)
    if by_owner and query.user is not None:
        found.append(CaseFacts.owner == query.user)
    return found


def _has_role(roles: str, role: str | None) -> bool:
    return role is None or role in roles.split(",")


def _roles(roles: str, wanted: str | None) -> list[str]:
    return [r for r in roles.split(",") if r and (wanted is None or r == wanted)]


def gather(conn: Connection, query: Slice, now: datetime, times: bool = True) -> Gathered:
    """The slice's tasks per element and per role: ended ones (those in summed weeks from
    the summaries, the rest from their rows) and open ones. ``times``: also each task's
    waiting and working time (the KPIs need only the counts)."""
    found = Gathered()
    since = as_utc(query.since) if query.since is not None else None
    until = as_utc(query.until) if query.until is not None else None
    summed = summed_until(conn) or _EPOCH
    # whole weeks inside the period that are summed: [first, last)
    first = _EPOCH
    if since is not None:
        first = monday(since.date())
        if since != _midnight(first):
            first += timedelta(days=7)
    last = summed if until is None else min(summed, monday(until.date()))
    if first < last:
        _add_weeks(found, conn, [_WEEKS.c.week >= first, _WEEKS.c.week < last,
                                 *_week_filters(query)], query, times)  # fmt: skip
    # ended in the period outside the summed weeks, then the open tasks: statements of
    # their own, each a range of an index (ended_at; state), where one with OR scans all
    if first < last:
        ranges = [(since, _midnight(first)), (_midnight(last), until)]
    else:
        ranges = [(since, until)]
    parts = [_ended_between(lo, hi) for lo, hi in ranges if lo is None or hi is None or lo < hi]
    parts.append(_open_created(query))
    for part in parts:
        rows = conn.execute(_task_rows([*part, *case_filters(query)])).all()
        _add_rows(found, rows, query, as_utc(now).timestamp())
    return found


_COUNTS = ("ended", "completed", "reworked", "limited", "met", "late")


def _add_weeks(found: Gathered, conn: Connection, where: list[Any], query: Slice,
               times: bool) -> None:  # fmt: skip
    """The summed weeks: counts added up by the database (a few rows per step), then, if
    asked, each week's times (packed: no parsing)."""
    if query.role is not None:
        where.append((literal(",") + _WEEKS.c.roles + literal(",")).contains(f",{query.role},"))
    keys = (_WEEKS.c.element_id, _WEEKS.c.roles)
    sums = [func.sum(_WEEKS.c[name]) for name in _COUNTS]
    stmt = select(*keys, func.max(_WEEKS.c.name), *sums).where(*where).group_by(*keys)
    for element, roles, name, *counts in conn.execute(stmt).all():
        step = found.steps[element]
        step.name = step.name or name
        ended, completed, reworked, limited, met, late = (int(n or 0) for n in counts)
        step.ended += ended
        step.completed += completed
        step.reworked += reworked
        step.limited += limited
        step.met += met
        step.late += late
        for role in _roles(roles, query.role):
            found.roles[role]["completed"] += completed
            found.roles[role]["overdue"] += late
    if times:
        stmt = select(_WEEKS.c.element_id, _WEEKS.c.waits, _WEEKS.c.works).where(*where)
        for element, waits, works in conn.execute(stmt).all():
            found.steps[element].waits.extend(_unpack(waits))
            found.steps[element].works.extend(_unpack(works))


def _ended_between(lo: datetime | None, hi: datetime | None) -> list[Any]:
    found: list[Any] = [HumanTask.ended_at.is_not(None)]
    if lo is not None:
        found.append(HumanTask.ended_at >= lo)
    if hi is not None:
        found.append(HumanTask.ended_at < hi)
    return found


def _open_created(query: Slice) -> list[Any]:
    found: list[Any] = [HumanTask.state == TaskState.OPEN]
    if query.since is not None:
        found.append(HumanTask.created_at >= as_utc(query.since))
    if query.until is not None:
        found.append(HumanTask.created_at < as_utc(query.until))
    return found


def _add_rows(found: Gathered, rows: Any, query: Slice, now: float) -> None:
    for row in rows:
        if not _has_role(row.candidate_roles, query.role):
            continue
        is_open = row.state == TaskState.OPEN
        who = row.assignee if is_open else row.completed_by
        if query.user is not None and who != query.user:
            continue
        step = found.steps[row.element_id]
        late = _late(row, now)
        if is_open:
            step.name = step.name or row.name
            step.open += 1
            step.late += 1 if late else 0
            step.reworked += 1 if row.reworked else 0
        else:
            _add_ended(step, row, now)
        for role in _roles(row.candidate_roles, query.role):
            counts = found.roles[role]
            counts["open" if is_open else "completed"] += (
                1 if is_open or row.state == TaskState.COMPLETED else 0
            )
            counts["overdue"] += 1 if late else 0


def _in_period(query: Slice) -> Any:
    """Ended in the period, or open and created in it."""
    return or_(
        and_(*_ended_between(_utc(query.since), _utc(query.until))),
        and_(*_open_created(query)),
    )


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)


def instances_at(
    conn: Connection, element_id: str, query: Slice, now: datetime
) -> list[tuple[int, str | None, int]]:
    """(instance, business key, tasks late) for the slice's tasks at one element, most
    late first (read off the task rows: one element's are few)."""
    from engine.storage import Instance

    stmt = (
        _task_rows([HumanTask.element_id == element_id, _in_period(query), *case_filters(query)])
        .add_columns(HumanTask.instance_id, Instance.business_key)
        .join(Instance, Instance.id == HumanTask.instance_id)
    )
    late: dict[int, int] = {}
    keys: dict[int, str | None] = {}
    moment = as_utc(now).timestamp()
    for row in conn.execute(stmt):
        who = row.assignee if row.state == TaskState.OPEN else row.completed_by
        if not _has_role(row.candidate_roles, query.role) or query.user not in (None, who):
            continue
        keys[row.instance_id] = row.business_key
        late[row.instance_id] = late.get(row.instance_id, 0) + (1 if _late(row, moment) else 0)
    return sorted(((i, keys[i], n) for i, n in late.items()), key=lambda t: (-t[2], t[0]))

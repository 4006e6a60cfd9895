"""The department's measures and where orders wait.

Two sources, both summaries the unit of work keeps in the transactions that write the
audit trail, so nothing here replays the trail:

* task rows (one per occurrence of a step, with its times): per element, how long tasks
  waited to be taken (created → claimed) and were worked on (claimed → completed), how
  often a step came back (rework loops), how often it missed its time limit; the on-time
  rate and each role's workload. Aggregated in SQL, percentiles too (window functions),
  so a million-event history answers in well under the 2 s target (bench/analytics.py).
* case facts (engine/reporting/facts.py, one row per instance with its milestones): the order
  measures. Each is a sample per case (a span, a yes/no, a score) summarised as
  percentiles, a share or a mean, and ``behind`` lists the same samples: the instances
  behind each figure.

Slices: a period, a definition, a customer grade and a user apply to both; a role to the
task measures only (an order is not in one role's queue). The period takes tasks created
in it, and for each order measure the cases whose milestone that closes the measure fell
in it (the quotations sent this month, the payments collected...). Percentiles are
nearest-rank: the smallest value with at least that share of values at or below it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import Connection, case, func, select
from sqlalchemy.orm import Session

from engine.clock import as_utc
from engine.reporting import rollups
from engine.reporting.rollups import Slice
from engine.storage import CaseFacts, epoch

ElementQuery = Slice  # a period, definition, role, user, customer grade


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
    on_time_rate: float | None = None  # of its completed tasks with a time limit, met


@dataclass(frozen=True)
class Kpis:
    """The department's measures for a period."""

    on_time_rate: float | None  # share of finished tasks with a time limit that met it
    inquiry_response_p50: float | None  # seconds, inquiry received -> quotation prepared
    inquiry_response_p90: float | None
    document_first_pass_rate: float | None  # first reviews that accepted the documents
    workload: dict[str, dict[str, int]]  # role -> open, completed, overdue
    quotation_turnaround_p50: float | None = None  # seconds, inquiry -> quotation sent
    quotation_turnaround_p90: float | None = None
    contract_to_shipped_p50: float | None = None  # seconds, contract signed -> cleared
    contract_to_shipped_p90: float | None = None
    shipped_to_paid_p50: float | None = None  # seconds, cleared for shipment -> written off
    shipped_to_paid_p90: float | None = None
    contract_to_paid_p50: float | None = None  # seconds, the whole order cycle
    contract_to_paid_p90: float | None = None
    fulfilment_rate: float | None = None  # shipments cleared by the promised delivery date
    overdue_collection_rate: float | None = None  # invoices whose due date passed unpaid
    bad_debt_rate: float | None = None  # invoices that ended as bad debt
    complaint_rate: float | None = None  # surveys with a complaint
    satisfaction_mean: float | None = None  # 1-5, from the surveys
    new_customers_by_grade: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Sample:
    """One case's part in a figure."""

    instance_id: int
    business_key: str | None
    value: float | bool | str


# --- step measures -----------------------------------------------------------------------


def elements(session: Session, query: ElementQuery, now: datetime) -> list[ElementStats]:
    """Per element of the matching tasks, busiest first."""
    steps = rollups.gather(session.connection(), query, now).steps
    stats = [
        ElementStats(
            element_id=element,
            name=step.name,
            count=step.ended + step.open,
            completed=step.completed,
            wait_p50=percentile(step.waits, 0.5),
            wait_p90=percentile(step.waits, 0.9),
            work_p50=percentile(step.works, 0.5),
            work_p90=percentile(step.works, 0.9),
            reworked=step.reworked,
            overdue=step.late,
            on_time_rate=_share(step.met, step.limited),
        )
        for element, step in steps.items()
    ]
    return sorted(stats, key=lambda s: (-s.count, s.element_id))


# --- order measures ----------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """An order measure: the milestone that puts a case in a period, and its sample as an
    SQL expression over the case's facts (NULL: the case does not count)."""

    closes: str  # the case_facts column
    kind: str  # span (seconds: percentiles), rate (yes/no: a share), mean, by (counted)
    sample: Any = None
    starts: str = ""  # a span's first milestone (it ends at ``closes``)


def _span(start: str, end: str) -> Measure:
    return Measure(end, "span", starts=start)


def _yes(condition: Any) -> Any:
    return case((condition, True), else_=False)


MEASURES: dict[str, Measure] = {
    "inquiry_response": _span("started_at", "quoted_at"),
    "quotation_turnaround": _span("started_at", "quote_sent_at"),
    "contract_to_shipped": _span("signed_at", "shipped_at"),
    "shipped_to_paid": _span("shipped_at", "paid_at"),
    "contract_to_paid": _span("signed_at", "paid_at"),
    "fulfilment_rate": Measure("shipped_at", "rate"),  # dates in the office's zone: Python
    "document_first_pass_rate": Measure("reviewed_at", "rate", CaseFacts.documents_first_pass),
    "overdue_collection_rate": Measure(
        "invoiced_at", "rate", _yes(CaseFacts.overdue_at.is_not(None))
    ),
    "bad_debt_rate": Measure(
        "invoiced_at", "rate", _yes(func.coalesce(CaseFacts.collection_outcome, "") == "bad_debt")
    ),
    "complaint_rate": Measure("surveyed_at", "rate", CaseFacts.complaint),
    "satisfaction_mean": Measure("surveyed_at", "mean", CaseFacts.satisfaction),
    "new_customers_by_grade": Measure(
        "customer_recorded_at", "by", func.coalesce(CaseFacts.grade, "?")
    ),
}


def _sliced(query: ElementQuery) -> list[Any]:
    """The slice's filters on cases: definition, grade, owner."""
    return rollups.case_filters(query, by_owner=True)


def _cases(query: ElementQuery, measure: Measure) -> list[Any]:
    """Filters: the slice, and the period on the milestone that closes the measure."""
    closes = getattr(CaseFacts, measure.closes)
    found = [closes.is_not(None), *_sliced(query)]
    if query.since is not None:
        found.append(closes >= as_utc(query.since))
    if query.until is not None:
        found.append(closes < as_utc(query.until))
    return found


def _promise_ends(zone: tzinfo) -> Callable[[str], float | None]:
    """A promised date -> the moment it ends in the office's zone (seconds since 1970);
    worked out once per date (a year of orders promises a few hundred dates)."""

    @functools.cache
    def ends(promised: str) -> float | None:
        try:
            day = date.fromisoformat(promised[:10])
        except ValueError:
            return None
        return datetime.combine(day + timedelta(days=1), time(), zone).timestamp()

    return ends


SPANS = [name for name, m in MEASURES.items() if m.kind == "span"]
_MILESTONES = sorted({c for n in SPANS for c in (MEASURES[n].starts, MEASURES[n].closes)})


Part = tuple[int, str | None, Any]  # instance, business key, its value: a Sample to be


def _spans(conn: Connection, query: ElementQuery, names: list[str]) -> dict[str, list[Part]]:
    """The span measures' samples, all from one pass over the slice's cases: their
    milestones read as seconds since 1970, each span kept if it closed in the period (each
    its own milestone: the period is applied here, not in SQL)."""
    where = _sliced(query)
    columns = [epoch(getattr(CaseFacts, c)) for c in _MILESTONES]
    stmt = select(CaseFacts.instance_id, CaseFacts.business_key, *columns).where(*where)
    lo = as_utc(query.since).timestamp() if query.since is not None else -math.inf
    hi = as_utc(query.until).timestamp() if query.until is not None else math.inf
    index = {c: i for i, c in enumerate(_MILESTONES)}
    pairs = [(n, index[MEASURES[n].starts], index[MEASURES[n].closes]) for n in names]
    rows: list[Any] = list(conn.execute(stmt.order_by(CaseFacts.instance_id)).all())
    lo, hi = lo - _HALF_MS, hi - _HALF_MS  # as if the moments were rounded to milliseconds
    found: dict[str, list[Part]] = {}
    for name, start, end in pairs:
        a, b = start + 2, end + 2  # after the instance and its key
        found[name] = [
            (row[0], row[1], row[b] - row[a])  # unrounded: callers round what they show
            for row in rows
            if row[a] is not None and row[b] is not None and lo <= row[b] < hi
        ]
    return found


# SQLite's julianday() is exact to some tens of microseconds
_HALF_MS = 0.0005


def _samples(conn: Connection, query: ElementQuery, name: str, zone: tzinfo) -> list[Part]:
    measure = MEASURES[name]
    if measure.kind == "span":
        return [(i, key, round(v, 3)) for i, key, v in _spans(conn, query, [name])[name]]
    where = _cases(query, measure)
    keys = (CaseFacts.instance_id, CaseFacts.business_key)
    found: list[Part] = []
    if name == "fulfilment_rate":
        stmt = select(*keys, epoch(CaseFacts.shipped_at), CaseFacts.promised_date).where(*where)
        ends = _promise_ends(zone)
        for instance_id, key, shipped, promised in conn.execute(stmt.order_by(keys[0])).all():
            end = ends(str(promised)) if promised else None
            if end is not None:  # shipped before the promised day was over
                found.append((instance_id, key, shipped < end - _HALF_MS))
        return found
    each = select(*keys, measure.sample).where(*where, measure.sample.is_not(None))
    for instance_id, key, value in conn.execute(each.order_by(keys[0])).all():
        found.append((instance_id, key, bool(value) if measure.kind == "rate" else value))
    return found


def _figure(conn: Connection, query: ElementQuery, name: str, zone: tzinfo) -> Any:
    """A measure's figure, aggregated in SQL where it can be."""
    measure = MEASURES[name]
    if name == "fulfilment_rate":
        return _rate([value for _, _, value in _samples(conn, query, name, zone)])
    where = [*_cases(query, measure), measure.sample.is_not(None)]
    if measure.kind == "rate":
        total, yes = conn.execute(
            select(func.count(), func.sum(case((measure.sample, 1), else_=0))).where(*where)
        ).one()
        return _share(int(yes or 0), int(total))
    if measure.kind == "mean":
        return conn.scalar(select(func.avg(measure.sample)).where(*where))
    stmt = select(measure.sample, func.count()).where(*where).group_by(measure.sample)
    return {str(k): int(n) for k, n in sorted(conn.execute(stmt).all())}


def kpis(session: Session, query: ElementQuery, now: datetime, zone: tzinfo = UTC) -> Kpis:
    """``zone``: where the promised delivery dates are dates (the office's calendar)."""
    conn = session.connection()
    gathered = rollups.gather(conn, query, now, times=False)
    limited = sum(step.limited for step in gathered.steps.values())
    met = sum(step.met for step in gathered.steps.values())
    spans: dict[str, float | None] = {}
    for name, samples in _spans(conn, query, SPANS).items():
        values = [value for _, _, value in samples]
        spans[f"{name}_p50"] = _ms(percentile(values, 0.5))
        spans[f"{name}_p90"] = _ms(percentile(values, 0.9))
    mean = _figure(conn, query, "satisfaction_mean", zone)
    return Kpis(
        on_time_rate=_share(met, limited),
        document_first_pass_rate=_figure(conn, query, "document_first_pass_rate", zone),
        workload={role: dict(c) for role, c in sorted(gathered.roles.items())},
        fulfilment_rate=_figure(conn, query, "fulfilment_rate", zone),
        overdue_collection_rate=_figure(conn, query, "overdue_collection_rate", zone),
        bad_debt_rate=_figure(conn, query, "bad_debt_rate", zone),
        complaint_rate=_figure(conn, query, "complaint_rate", zone),
        satisfaction_mean=None if mean is None else float(mean),
        new_customers_by_grade=_figure(conn, query, "new_customers_by_grade", zone),
        **spans,
    )


def behind(session: Session, measure: str, query: ElementQuery, zone: tzinfo = UTC) -> list[Sample]:
    """The cases behind an order measure, each with its sample (seconds, yes/no, score)."""
    if measure not in MEASURES:
        raise KeyError(measure)
    return [Sample(*part) for part in _samples(session.connection(), query, measure, zone)]


def behind_element(
    session: Session, element_id: str, query: ElementQuery, now: datetime
) -> list[Sample]:
    """The instances with tasks at an element in the slice, each with how many of them
    ran late, latest first."""
    return [
        Sample(instance_id, key, late)
        for instance_id, key, late in rollups.instances_at(
            session.connection(), element_id, query, now
        )
    ]


# --- summaries ---------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least q of them at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def _ms(seconds: float | None) -> float | None:
    """Rounded to milliseconds (after ranking: rounding keeps the order)."""
    return None if seconds is None else round(seconds, 3)


def _rate(values: list[Any]) -> float | None:
    return _share(sum(1 for v in values if v), len(values))


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None

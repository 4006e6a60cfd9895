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
from typing import Any

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


@dataclass(frozen=True)
class Kpis:
    """The department's measures for a period (tasks created in it)."""

    on_time_rate: float | None  # share of finished tasks with a time limit that met it
    inquiry_response_p50: float | None  # seconds, inquiry received -> quotation prepared
    inquiry_response_p90: float | None
    document_first_pass_rate: float | None  # first reviews that accepted the documents
    workload: dict[str, dict[str, int]]  # role -> open, completed, overdue
    quotation_turnaround_p50: float | None = None  # seconds, inquiry -> quotation sent
    quotation_turnaround_p90: float | None = None
    contract_to_shipped_p50: float | None = None  # seconds, contract signed -> cleared
    shipped_to_paid_p50: float | None = None  # seconds, cleared for shipment -> written off
    overdue_collection_rate: float | None = None  # invoices whose due date passed unpaid
    bad_debt_rate: float | None = None  # invoices that ended as bad debt
    complaint_rate: float | None = None  # surveys with a complaint
    satisfaction_mean: float | None = None  # 1-5, from the surveys
    new_customers_by_grade: dict[str, int] | None = None  # customer records, by grade


def kpis(session: Session, query: ElementQuery, now: datetime) -> Kpis:
    from engine.models import AuditEvent  # the trail knows what each review decided

    rows = session.execute(_tasks(query).add_columns(HumanTaskRole.role_id)).all()
    met = finished_with_limit = 0
    workload: dict[str, dict[str, int]] = defaultdict(lambda: {"open": 0, "completed": 0,
                                                               "overdue": 0})  # fmt: skip
    counted: set[int] = set()
    for row in rows:
        due = as_utc(row.due_at) if row.due_at else None
        ended = as_utc(row.ended_at) if row.ended_at else None
        late = row.breached_at is not None or (due is not None and (ended or now) > due)
        role = workload[row.role_id]
        if row.state == TaskState.OPEN:
            role["open"] += 1
        elif row.state == TaskState.COMPLETED:
            role["completed"] += 1
        if late:
            role["overdue"] += 1
        if row.id in counted:
            continue  # a task in two queues counts once below
        counted.add(row.id)
        if row.state == TaskState.COMPLETED and due is not None:
            finished_with_limit += 1
            met += 0 if late else 1
    first_quotes: dict[int, float] = {}  # the first quotation of each inquiry: later ones
    for row in session.execute(  # are revisions
        select(HumanTask.instance_id, HumanTask.ended_at, Instance.started_at)
        .join(Instance, Instance.id == HumanTask.instance_id)
        .where(
            HumanTask.element_id == "prepare_quotation",
            HumanTask.state == TaskState.COMPLETED,
            *_period(HumanTask.created_at, query),
        )
        .order_by(HumanTask.id)
    ):
        waited = (as_utc(row.ended_at) - as_utc(row.started_at)).total_seconds()
        first_quotes.setdefault(row.instance_id, waited)
    responses = list(first_quotes.values())
    first_reviews: dict[int, bool] = {}
    for event in session.scalars(
        select(AuditEvent)
        .where(AuditEvent.kind == "task_completed", AuditEvent.element_id == "review_documents")
        .where(*_period(AuditEvent.at, query))
        .order_by(AuditEvent.instance_id, AuditEvent.seq)
    ):
        submitted = (event.data or {}).get("submitted", {})
        first_reviews.setdefault(int(event.instance_id or 0), bool(submitted.get("documents_ok")))
    done = _completions(session, query)
    started = dict(
        session.execute(select(Instance.id, Instance.started_at).where(Instance.id.in_(
            {i for per in done.values() for i in per}
        ))).all()
    ) if done else {}  # fmt: skip
    quotes = _spans(started, done.get("send_quotation", {}))
    signed, cleared = done.get("sign_contract", {}), done.get("declare_customs", {})
    settled = done.get("write_off", {})
    invoices = done.get("issue_invoice", {})
    overdue_fired = _fired(session, "payment_overdue", query)
    chased = done.get("chase_payment", {})
    surveys = done.get("satisfaction_survey", {})
    grades: dict[str, int] = defaultdict(int)
    recorded = done.get("create_customer_record", {})
    for instance_id, (_, data) in done.get("screen_lead", {}).items():
        grade = (data.get("changes") or {}).get("grade")  # set by the grading table
        if grade and grade[1] and instance_id in recorded:  # a customer record was made
            grades[str(grade[1])] += 1
    return Kpis(
        quotation_turnaround_p50=percentile(quotes, 0.5),
        quotation_turnaround_p90=percentile(quotes, 0.9),
        contract_to_shipped_p50=percentile(_between(signed, cleared), 0.5),
        shipped_to_paid_p50=percentile(_between(cleared, settled), 0.5),
        overdue_collection_rate=_share(len(overdue_fired & set(invoices)), len(invoices)),
        bad_debt_rate=_share(
            sum(1 for _, d in chased.values() if _submitted(d).get("outcome") == "bad_debt"),
            len(invoices),
        ),
        complaint_rate=_share(
            sum(1 for _, d in surveys.values() if _submitted(d).get("complaint")), len(surveys)
        ),
        satisfaction_mean=_mean(_scores(surveys)),
        new_customers_by_grade=dict(sorted(grades.items())),
        on_time_rate=met / finished_with_limit if finished_with_limit else None,
        inquiry_response_p50=percentile(responses, 0.5),
        inquiry_response_p90=percentile(responses, 0.9),
        document_first_pass_rate=(
            sum(first_reviews.values()) / len(first_reviews) if first_reviews else None
        ),
        workload={role: dict(counts) for role, counts in sorted(workload.items())},
    )


def _completions(
    session: Session, query: ElementQuery
) -> dict[str, dict[int, tuple[datetime, dict[str, Any]]]]:
    """element -> instance -> (when, event data) of the instance's first completion of it."""
    from engine.models import AuditEvent

    stmt = select(AuditEvent.element_id, AuditEvent.instance_id, AuditEvent.at, AuditEvent.data)
    stmt = stmt.where(AuditEvent.kind == "task_completed", *_period(AuditEvent.at, query))
    if query.definition is not None:
        stmt = stmt.where(
            AuditEvent.instance_id.in_(
                select(Instance.id)
                .join(Definition, Definition.id == Instance.definition_id)
                .where(Definition.key == query.definition)
            )
        )
    found: dict[str, dict[int, tuple[datetime, dict[str, Any]]]] = defaultdict(dict)
    for element, instance_id, at, data in session.execute(stmt.order_by(AuditEvent.id)):
        if instance_id is not None and element:
            found[element].setdefault(int(instance_id), (as_utc(at), data or {}))
    return found


def _fired(session: Session, element: str, query: ElementQuery) -> set[int]:
    from engine.models import AuditEvent

    return {
        int(i)
        for i in session.scalars(
            select(AuditEvent.instance_id).where(
                AuditEvent.kind == "timer_fired",
                AuditEvent.element_id == element,
                *_period(AuditEvent.at, query),
            )
        )
        if i is not None
    }


def _submitted(data: dict[str, Any]) -> dict[str, Any]:
    found = data.get("submitted")
    return found if isinstance(found, dict) else {}


def _spans(
    started: dict[int, datetime], done: dict[int, tuple[datetime, dict[str, Any]]]
) -> list[float]:
    return [
        (at - as_utc(started[i])).total_seconds() for i, (at, _) in done.items() if i in started
    ]


def _between(
    first: dict[int, tuple[datetime, dict[str, Any]]],
    then: dict[int, tuple[datetime, dict[str, Any]]],
) -> list[float]:
    return [(then[i][0] - at).total_seconds() for i, (at, _) in first.items() if i in then]


def _scores(surveys: dict[int, tuple[datetime, dict[str, Any]]]) -> list[float]:
    found = (str(_submitted(data).get("satisfaction", "")) for _, data in surveys.values())
    return [float(score) for score in found if score.isdigit()]


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _period(column: Any, query: ElementQuery) -> list[Any]:
    found = []
    if query.since is not None:
        found.append(column >= as_utc(query.since))
    if query.until is not None:
        found.append(column < as_utc(query.until))
    return found


def _tasks(query: ElementQuery) -> Any:
    """Tasks with each of their roles, filtered as ``elements`` filters them."""
    stmt = select(
        HumanTask.id,
        HumanTask.state,
        HumanTask.ended_at,
        HumanTask.due_at,
        HumanTask.breached_at,
    ).join(HumanTaskRole, HumanTaskRole.task_id == HumanTask.id)
    if query.definition is not None:
        stmt = stmt.join(Instance, Instance.id == HumanTask.instance_id).join(
            Definition, Definition.id == Instance.definition_id
        )
        stmt = stmt.where(Definition.key == query.definition)
    if query.role is not None:
        stmt = stmt.where(HumanTaskRole.role_id == query.role)
    return stmt.where(*_period(HumanTask.created_at, query))

"""Time limits: SLA due dates in business time, breaches recorded once and escalated,
timers fired by the scheduler exactly once, cycles, and timers in business time.

The engine's clock and SpiffWorkflow's own (time-machine) move together; the business
calendar is the shipped one (Shanghai office hours, Chinese holidays). The first moment
is Friday 2026-11-27 09:00 UTC, 17:00 in Shanghai: an hour before closing time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from sqlalchemy import select

from engine.errors import ProcessFailed
from engine.execution import Limits
from engine.queues import InboxQuery
from engine.runtime import LiveWorkflows
from engine.storage import (
    Database,
    Definition,
    HumanTask,
    Instance,
    InstanceStatus,
    StartTimer,
    StepWeek,
    TaskState,
)
from engine.timers.scheduler import Scheduler, Timers
from engine.tradeflow import Tradeflow
from tests.conftest import FakeClock
from tests.diagrams import diagram, timer


def props(**values: str) -> str:
    inner = "".join(f'<camunda:property name="{k}" value="{v}" />' for k, v in values.items())
    return (
        f"<bpmn:extensionElements><camunda:properties>{inner}</camunda:properties>"
        "</bpmn:extensionElements>"
    )


# a check due in two working hours; when late, the manager's queue gets it too
CHECK = diagram(
    "checking",
    '<bpmn:startEvent id="s" /><bpmn:userTask id="check" name="Check" '
    f'camunda:candidateGroups="finance">{props(sla="PT2H", escalateTo="manager")}'
    '</bpmn:userTask><bpmn:endEvent id="e" /><bpmn:sequenceFlow id="f1" sourceRef="s" '
    'targetRef="check" /><bpmn:sequenceFlow id="f2" sourceRef="check" targetRef="e" />',
)
# wait ten minutes, then a task
WAIT = diagram(
    "wait",
    '<bpmn:startEvent id="s" /><bpmn:intermediateCatchEvent id="pause">'
    f"{timer('timeDuration', 'PT10M')}"
    '</bpmn:intermediateCatchEvent><bpmn:userTask id="after" camunda:candidateGroups="finance" />'
    '<bpmn:endEvent id="e" /><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="pause" />'
    '<bpmn:sequenceFlow id="f2" sourceRef="pause" targetRef="after" />'
    '<bpmn:sequenceFlow id="f3" sourceRef="after" targetRef="e" />',
)
# an answer with an hourly reminder, three times (non-interrupting cycle), and a hard
# limit of four working hours (interrupting, business time)
ANSWER = diagram(
    "answering",
    '<bpmn:startEvent id="s" /><bpmn:userTask id="answer" camunda:candidateGroups="finance" />'
    '<bpmn:boundaryEvent id="remind" attachedToRef="answer" cancelActivity="false">'
    f"{timer('timeCycle', 'R3/PT1H')}</bpmn:boundaryEvent>"
    f'<bpmn:boundaryEvent id="too_late" attachedToRef="answer">{props(calendar="business")}'
    f"{timer('timeDuration', 'PT4H')}</bpmn:boundaryEvent>"
    '<bpmn:userTask id="escalated" camunda:candidateGroups="manager" />'
    '<bpmn:endEvent id="e1" /><bpmn:endEvent id="e2" /><bpmn:endEvent id="e3" />'
    '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="answer" />'
    '<bpmn:sequenceFlow id="f2" sourceRef="answer" targetRef="e1" />'
    '<bpmn:sequenceFlow id="f3" sourceRef="remind" targetRef="e2" />'
    '<bpmn:sequenceFlow id="f4" sourceRef="too_late" targetRef="escalated" />'
    '<bpmn:sequenceFlow id="f5" sourceRef="escalated" targetRef="e3" />',
)
# a timer whose expression fails when it is reached
BROKEN = diagram(
    "broken",
    '<bpmn:startEvent id="s" /><bpmn:intermediateCatchEvent id="pause">'
    f"{timer('timeDuration', 'PT1M')}"
    '</bpmn:intermediateCatchEvent><bpmn:exclusiveGateway id="g" /><bpmn:endEvent id="e" />'
    '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="pause" />'
    '<bpmn:sequenceFlow id="f2" sourceRef="pause" targetRef="g" />'
    '<bpmn:sequenceFlow id="f3" sourceRef="g" targetRef="e">'
    '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">no_such_variable'
    "</bpmn:conditionExpression>"
    "</bpmn:sequenceFlow>",
)


class Clocks:
    """The engine's clock and SpiffWorkflow's, moved together."""

    def __init__(self, clock: FakeClock, traveller: Any) -> None:
        self.clock, self.traveller = clock, traveller

    def advance(self, **delta: float) -> datetime:
        self.traveller.shift(timedelta(**delta))
        return self.clock.advance(**delta)


@pytest.fixture
def clocks(clock: FakeClock) -> Iterator[Clocks]:
    with time_machine.travel(clock.now(), tick=False) as traveller:
        yield Clocks(clock, traveller)


@pytest.fixture
def flow(db: Database, clock: FakeClock, clocks: Clocks) -> Tradeflow:
    tf = Tradeflow(db, clock)
    tf.runtime.live = LiveWorkflows(size=0)  # every step restored from the database
    tf.deploy([CHECK, WAIT, ANSWER, BROKEN], actor="owner")
    tf.add_user("cashier", ["finance"])
    tf.add_user("boss", ["manager"])
    return tf


def events(flow: Tradeflow, iid: int, kind: str) -> list[Any]:
    return [e for e in flow.history(iid) if e.kind == kind]


def open_task(flow: Tradeflow, iid: int, element: str) -> HumanTask:
    [task] = [
        t for t in flow.tasks_of(iid) if t.element_id == element and t.state == TaskState.OPEN
    ]
    return task


def inbox(flow: Tradeflow, user: str, **query: Any) -> list[str]:
    return [t.element_id for t in flow.inbox(user, InboxQuery(**query)).tasks]


def test_an_sla_is_counted_in_working_hours(flow: Tradeflow) -> None:
    iid = flow.start("checking", actor="cashier")
    task = open_task(flow, iid, "check")
    # one working hour left on Friday (to 18:00 Shanghai), the second on Monday 09:00-10:00
    monday_10 = datetime(2026, 11, 30, 2, tzinfo=UTC)
    assert task.due_at is not None and task.due_at.replace(tzinfo=UTC) == monday_10
    assert flow.instance(iid).next_wakeup_at.replace(tzinfo=UTC) == monday_10  # type: ignore[union-attr]


def test_a_breach_is_recorded_once_and_escalated(flow: Tradeflow, clocks: Clocks) -> None:
    iid = flow.start("checking", actor="cashier")
    timers = Timers(flow.runtime)
    assert timers.fire_due() == [] and inbox(flow, "boss") == []
    clocks.advance(days=2, hours=17, minutes=1)  # Monday 02:01 UTC, 10:01 in Shanghai
    fired = timers.fire_due()
    assert [f.instance_id for f in fired] == [iid]
    task = open_task(flow, iid, "check")
    assert task.breached_at is not None
    assert task.role_ids == ["finance", "manager"]
    [breach] = events(flow, iid, "sla_breached")
    assert breach.data["escalated_to"] == ["manager"]
    assert breach.data["task_id"] == task.id
    # it now sits in the manager's queue too, as overdue, and the manager may take it
    assert inbox(flow, "boss") == ["check"]
    assert inbox(flow, "boss", overdue=True) == ["check"]
    assert flow.instance(iid).next_wakeup_at is None  # nothing left to wait for
    assert timers.fire_due() == []
    flow.wake(iid)  # any later command leaves the breach as it is
    assert len(events(flow, iid, "sla_breached")) == 1
    flow.complete(task.id, actor="boss")
    assert flow.instance(iid).status == InstanceStatus.COMPLETED


def test_a_task_done_in_time_breaches_nothing(flow: Tradeflow, clocks: Clocks) -> None:
    iid = flow.start("checking", actor="cashier")
    flow.complete(open_task(flow, iid, "check").id, actor="cashier")
    clocks.advance(days=5)
    assert Timers(flow.runtime).fire_due() == []
    assert events(flow, iid, "sla_breached") == []


def test_a_timer_fires_when_due_not_before(flow: Tradeflow, clocks: Clocks) -> None:
    iid = flow.start("wait", actor="cashier")
    timers = Timers(flow.runtime)
    clocks.advance(minutes=9, seconds=59)
    assert timers.fire_due() == []
    clocks.advance(seconds=2)
    [fired] = timers.fire_due()
    assert (fired.instance_id, fired.elements) == (iid, ["pause"])
    assert fired.at - fired.due == timedelta(seconds=1)  # lateness, as measured
    assert [t.element_id for t in flow.tasks_of(iid)] == ["after"]
    assert timers.fire_due() == []
    assert len(events(flow, iid, "timer_fired")) == 1


def test_racing_sweepers_fire_each_timer_once(flow: Tradeflow, clocks: Clocks) -> None:
    started = [flow.start("wait", actor="cashier") for _ in range(12)]
    clocks.advance(minutes=11)
    results: list[int] = []
    errors: list[BaseException] = []

    def sweep() -> None:
        try:
            results.extend(f.instance_id for f in Timers(flow.runtime).fire_due())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == sorted(started)
    for iid in started:
        assert len(events(flow, iid, "timer_fired")) == 1


def test_a_cycle_reminds_three_times_then_stops(flow: Tradeflow, clocks: Clocks) -> None:
    iid = flow.start("answering", actor="cashier")
    timers = Timers(flow.runtime)
    fired: list[str] = []
    for _ in range(5):
        clocks.advance(hours=1, seconds=1)
        fired += [e for f in timers.fire_due() for e in f.elements]
    assert fired.count("remind") == 3
    assert open_task(flow, iid, "answer").state == TaskState.OPEN  # non-interrupting


def test_a_business_time_limit_skips_the_weekend(flow: Tradeflow, clocks: Clocks) -> None:
    iid = flow.start("answering", actor="cashier")
    timers = Timers(flow.runtime)
    # four working hours from Friday 17:00: one on Friday, three on Monday (to 12:00)
    clocks.advance(days=2, hours=18, minutes=59, seconds=59)  # Monday 11:59:59 in Shanghai
    elements = [e for f in timers.fire_due() for e in f.elements]
    assert "too_late" not in elements
    clocks.advance(seconds=2)
    elements = [e for f in timers.fire_due() for e in f.elements]
    assert "too_late" in elements
    assert [t.element_id for t in flow.tasks_of(iid) if t.state == TaskState.OPEN] == ["escalated"]


def test_a_timer_that_breaks_the_process_fails_it_once(flow: Tradeflow, clocks: Clocks) -> None:
    iid = flow.start("broken", actor="cashier")
    clocks.advance(minutes=2)
    timers = Timers(flow.runtime)
    [fired] = timers.fire_due()
    assert (fired.instance_id, fired.elements) == (iid, [])
    instance = flow.instance(iid)
    assert instance.status == InstanceStatus.FAILED
    assert "no_such_variable" in (instance.error or "")
    assert timers.fire_due() == []  # not retried forever


SOON = diagram(
    "soon",
    '<bpmn:startEvent id="s" /><bpmn:intermediateCatchEvent id="pause">'
    f"{timer('timeDuration', 'PT1S')}"
    '</bpmn:intermediateCatchEvent><bpmn:userTask id="after" camunda:candidateGroups="finance" />'
    '<bpmn:endEvent id="e" /><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="pause" />'
    '<bpmn:sequenceFlow id="f2" sourceRef="pause" targetRef="after" />'
    '<bpmn:sequenceFlow id="f3" sourceRef="after" targetRef="e" />',
)


def test_the_scheduler_wakes_at_the_due_time(db: Database) -> None:
    """Real time: a sweep every 5 s, yet a timer due in a second fires within a second of
    its due time, because the command that set it told the scheduler (no fake clocks)."""
    flow = Tradeflow(db)
    flow.deploy([SOON], actor="owner")
    scheduler = Scheduler(Timers(flow.runtime), sweep_seconds=5)
    scheduler.start()
    try:
        time.sleep(0.2)  # the first sweep has run: the next is 5 s away
        iid = flow.start("soon", actor="system")
        due = flow.instance(iid).next_wakeup_at
        assert due is not None
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and not flow.tasks_of(iid):
            time.sleep(0.02)
    finally:
        scheduler.shutdown()
    [fired] = events(flow, iid, "timer_fired")
    lateness = fired.at.replace(tzinfo=UTC) - due.replace(tzinfo=UTC)
    assert timedelta(0) <= lateness < timedelta(seconds=1), lateness


def starting_on(pid: str, kind: str, value: str) -> tuple[str, bytes]:
    """A process that starts on a timer: a follow-up task for finance."""
    return diagram(
        pid,
        f'<bpmn:startEvent id="tick">{timer(kind, value)}</bpmn:startEvent>'
        '<bpmn:userTask id="follow_up" camunda:candidateGroups="finance" />'
        '<bpmn:endEvent id="e" /><bpmn:sequenceFlow id="f1" sourceRef="tick" '
        'targetRef="follow_up" /><bpmn:sequenceFlow id="f2" sourceRef="follow_up" targetRef="e" />',
    )


def started(flow: Tradeflow, key: str) -> list[int]:
    with flow.db.reading() as session:
        return list(
            session.scalars(
                select(Instance.id)
                .join(Definition, Definition.id == Instance.definition_id)
                .where(Definition.key == key)
                .order_by(Instance.id)
            )
        )


def test_a_monthly_process_starts_once_a_month(flow: Tradeflow, clocks: Clocks) -> None:
    flow.deploy([starting_on("monthly", "timeCycle", "R/P30D")], actor="owner")  # unquoted
    timers = Timers(flow.runtime)
    clocks.advance(days=29, hours=23)
    assert timers.fire_due() == [] and started(flow, "monthly") == []
    clocks.advance(hours=1, seconds=1)
    [fired] = timers.fire_due()
    assert started(flow, "monthly") == [fired.instance_id]
    assert fired.elements == ["tick"]
    assert [t.element_id for t in flow.tasks_of(fired.instance_id)] == ["follow_up"]
    [began] = events(flow, fired.instance_id, "instance_started")
    assert (began.actor, began.data["timer"]) == ("scheduler", "tick")
    assert timers.fire_due() == []  # once per round
    clocks.advance(days=30)
    timers.fire_due()
    assert len(started(flow, "monthly")) == 2
    # each round is an instance of its own, and ends on its own
    flow.complete(open_task(flow, fired.instance_id, "follow_up").id, actor="cashier")
    assert flow.instance(fired.instance_id).status == InstanceStatus.COMPLETED


def test_a_new_version_replaces_the_schedule(flow: Tradeflow, clocks: Clocks) -> None:
    flow.deploy([starting_on("monthly", "timeCycle", "R/P30D")], actor="owner")
    flow.deploy([starting_on("monthly", "timeCycle", "R/P7D")], actor="owner")  # v2: weekly
    timers = Timers(flow.runtime)
    clocks.advance(days=7, seconds=1)
    assert len(timers.fire_due()) == 1
    plain = WAIT[1].replace(b'id="wait"', b'id="monthly"').replace(b"d_wait", b"d_monthly")
    flow.deploy([("monthly.bpmn", plain)], actor="owner")  # v3: no timer start at all
    clocks.advance(days=60)
    assert [f for f in timers.fire_due() if f.elements == ["tick"]] == []
    assert len(started(flow, "monthly")) == 1


def test_a_process_starts_once_at_its_date(flow: Tradeflow, clocks: Clocks) -> None:
    flow.deploy([starting_on("year_end", "timeDate", "2026-12-31T18:00:00+08:00")], actor="owner")
    timers = Timers(flow.runtime)
    clocks.advance(days=34)  # 2026-12-31 09:00 UTC, 17:00 in Shanghai
    assert timers.fire_due() == []
    clocks.advance(hours=1, seconds=1)
    assert len(timers.fire_due()) == 1
    clocks.advance(days=400)
    assert timers.fire_due() == [] and len(started(flow, "year_end")) == 1


def test_starting_a_timer_started_process_by_hand_runs_it_now(flow: Tradeflow) -> None:
    flow.deploy([starting_on("monthly", "timeCycle", "R/P30D")], actor="owner")
    iid = flow.start("monthly", actor="cashier")
    assert [t.element_id for t in flow.tasks_of(iid)] == ["follow_up"]
    flow.complete(open_task(flow, iid, "follow_up").id, actor="cashier")
    assert flow.instance(iid).status == InstanceStatus.COMPLETED


# --- what the review found --------------------------------------------------------------


def test_an_instance_that_cannot_fire_does_not_hold_up_the_others(
    flow: Tradeflow, clocks: Clocks
) -> None:
    """In one batch: the broken instance is rolled back to its savepoint and failed, the
    others fire, and every chain holds."""
    broken = flow.start("broken", actor="cashier")
    good = [flow.start("wait", actor="cashier") for _ in range(3)]
    clocks.advance(minutes=11)
    fired = Timers(flow.runtime).fire_due()
    assert sorted(f.instance_id for f in fired if f.elements) == sorted(good)
    assert flow.instance(broken).status == InstanceStatus.FAILED
    for iid in (broken, *good):
        assert flow.verify(f"instance:{iid}").ok


def test_a_business_limit_that_cannot_be_counted_is_refused(flow: Tradeflow) -> None:
    """A month of working time is no such thing: refused when the timer would start,
    with a clear error, and nothing is left behind."""
    months = diagram(
        "months",
        '<bpmn:startEvent id="s" /><bpmn:userTask id="work" camunda:candidateGroups="finance" />'
        f'<bpmn:boundaryEvent id="limit" attachedToRef="work">{props(calendar="business")}'
        f"{timer('timeDuration', 'span')}</bpmn:boundaryEvent>"
        '<bpmn:endEvent id="e1" /><bpmn:endEvent id="e2" />'
        '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="work" />'
        '<bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="e1" />'
        '<bpmn:sequenceFlow id="f3" sourceRef="limit" targetRef="e2" />',
    )
    flow.deploy([months], actor="owner")
    with pytest.raises(ProcessFailed, match=r"limit.*months"):
        flow.start("months", actor="cashier", variables={"span": "P1M"})
    assert started(flow, "months") == []


def test_a_date_without_an_offset_is_in_the_offices_time_zone(
    flow: Tradeflow, clocks: Clocks
) -> None:
    at = diagram(
        "at_six",
        '<bpmn:startEvent id="s" /><bpmn:intermediateCatchEvent id="six">'
        f"{timer('timeDate', '2026-11-27T18:00:00')}</bpmn:intermediateCatchEvent>"
        '<bpmn:userTask id="after" camunda:candidateGroups="finance" /><bpmn:endEvent id="e" />'
        '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="six" />'
        '<bpmn:sequenceFlow id="f2" sourceRef="six" targetRef="after" />'
        '<bpmn:sequenceFlow id="f3" sourceRef="after" targetRef="e" />',
    )
    flow.deploy([at], actor="owner")
    iid = flow.start("at_six", actor="cashier")
    # 18:00 in Shanghai is 10:00 UTC, an hour after the tests' first moment
    wake = flow.instance(iid).next_wakeup_at
    assert wake is not None and wake.replace(tzinfo=UTC) == datetime(2026, 11, 27, 10, tzinfo=UTC)
    timers = Timers(flow.runtime)
    clocks.advance(minutes=59)
    assert timers.fire_due() == []
    clocks.advance(minutes=2)
    assert [f.elements for f in timers.fire_due()] == [["six"]]


def test_a_monthly_start_follows_the_calendar_and_skips_missed_rounds(
    flow: Tradeflow, clocks: Clocks
) -> None:
    flow.deploy([starting_on("month_end", "timeCycle", "R/P1M")], actor="owner")
    timers = Timers(flow.runtime)
    with flow.db.reading() as session:
        from engine.storage import StartTimer

        first = session.scalars(select(StartTimer.next_at)).one()
    assert first.replace(tzinfo=UTC) == datetime(2026, 12, 27, 9, tzinfo=UTC)  # a month on
    clocks.advance(days=100)  # down for three months: one round now, the next ahead
    assert len(timers.fire_due()) == 1
    with flow.db.reading() as session:
        following = session.scalars(select(StartTimer.next_at)).one()
    assert following.replace(tzinfo=UTC) == datetime(2027, 3, 27, 9, tzinfo=UTC)


def test_stopping_the_scheduler_mid_sweep_returns_promptly(flow: Tradeflow) -> None:
    """`tradeflow worker` on SIGTERM: it used to wait for ever (a lock held both ways)."""
    for _ in range(60):
        flow.start("wait", actor="cashier")
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=11), tick=True):
        real = Tradeflow(flow.db)
        real.runtime.calendar = flow.runtime.calendar
        scheduler = Scheduler(Timers(real.runtime), sweep_seconds=0.05)
        scheduler.start()
        time.sleep(0.3)  # mid-sweep
        began = time.monotonic()
        scheduler.shutdown()
        assert time.monotonic() - began < 5


def test_the_sweep_sums_the_weeks_that_are_over(flow: Tradeflow, clocks: Clocks) -> None:
    """The step measures' weekly summaries (engine/reporting/rollups.py) are made by the sweep."""
    from engine.reporting import rollups

    iid = flow.start("checking", actor="cashier")
    flow.complete(open_task(flow, iid, "check").id, actor="cashier")
    scheduler = Scheduler(Timers(flow.runtime))
    scheduler.sweep()  # the week the task ended in (Friday's) is not over yet
    with flow.db.reading() as session:
        assert rollups.summed_until(session.connection()) is None
    clocks.advance(days=3, hours=2)  # Monday 11:00
    scheduler._last_expiry = 0.0  # the summing rides with message expiry, once a minute
    scheduler.sweep()
    with flow.db.reading() as session:
        until = rollups.summed_until(session.connection())
        summed = session.execute(select(StepWeek.element_id, StepWeek.completed)).all()
    assert until == flow.clock.now().date()  # summed to Monday 00:00
    assert [tuple(row) for row in summed] == [("check", 1)]


# --- budgets and too-fast cycles (engine/execution/limits.py) ----------------------------------


def spinning(pid: str, start: str = "", pause: bool = True) -> tuple[str, bytes]:
    """(A minute's wait, then) a loop that never waits: the count only grows."""
    wait = (
        f'<bpmn:intermediateCatchEvent id="pause">{timer("timeDuration", "PT1M")}'
        "</bpmn:intermediateCatchEvent>"
        '<bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="pause" />'
        '<bpmn:sequenceFlow id="f1" sourceRef="pause" targetRef="count" />'
        if pause
        else '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="count" />'
    )
    return diagram(
        pid,
        f'<bpmn:startEvent id="s">{start}</bpmn:startEvent>{wait}'
        '<bpmn:scriptTask id="count"><bpmn:script>n = get("n", 0) + 1</bpmn:script>'
        '</bpmn:scriptTask><bpmn:exclusiveGateway id="more" /><bpmn:endEvent id="e" />'
        '<bpmn:sequenceFlow id="f3" sourceRef="count" targetRef="more" />'
        '<bpmn:sequenceFlow id="f4" sourceRef="more" targetRef="count">'
        '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">n &gt; 0'
        "</bpmn:conditionExpression></bpmn:sequenceFlow>"
        '<bpmn:sequenceFlow id="f5" sourceRef="more" targetRef="e">'
        '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">n &lt;= 0'
        "</bpmn:conditionExpression></bpmn:sequenceFlow>",
    )


def test_a_timer_that_runs_over_its_budget_fails_its_instance_and_the_rest_fire(
    flow: Tradeflow, clocks: Clocks
) -> None:
    flow.deploy([spinning("spin")], actor="owner")
    flow.runtime.limits = Limits(max_steps=100)
    spins = flow.start("spin", actor="cashier")
    waiting = flow.start("wait", actor="cashier")
    clocks.advance(minutes=11)
    fired = Timers(flow.runtime).fire_due()
    assert {f.instance_id: f.elements for f in fired} == {spins: [], waiting: ["pause"]}
    instance = flow.instance(spins)
    assert instance.status == InstanceStatus.FAILED  # the incident, with its reason
    assert "100 engine steps" in (instance.error or "")
    assert "'count'" in (instance.error or "") or "'more'" in (instance.error or "")
    assert events(flow, spins, "timer_fired") == []  # the firing was rolled back
    assert flow.verify(f"instance:{spins}").ok
    assert Timers(flow.runtime).fire_due() == []


def test_a_start_timer_round_over_its_budget_is_kept_as_a_failed_instance(
    flow: Tradeflow, clocks: Clocks
) -> None:
    daily = timer("timeCycle", "R/P1D")
    flow.deploy([spinning("spin", start=daily, pause=False)], actor="owner")
    flow.runtime.limits = Limits(max_steps=100)
    timers = Timers(flow.runtime)
    clocks.advance(days=1, seconds=1)
    [fired] = timers.fire_due()
    [iid] = started(flow, "spin")
    assert fired.instance_id == iid
    instance = flow.instance(iid)
    assert instance.status == InstanceStatus.FAILED and "engine steps" in (instance.error or "")
    assert [e.kind for e in flow.history(iid)] == ["instance_started", "instance_failed"]
    assert flow.verify(f"instance:{iid}").ok
    clocks.advance(days=1)  # the schedule goes on: the next round is due a day later
    assert len(timers.fire_due()) == 1 and len(started(flow, "spin")) == 2


def _deployed_under(
    db: Database, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, *files: tuple[str, bytes]
) -> Tradeflow:
    """Deployed while cycles of a millisecond were allowed (before the minimum existed, or
    configured that low): the rows are what such a deployment stored."""
    monkeypatch.setenv("TRADEFLOW_MIN_TIMER_INTERVAL", "0.0001")
    then = Tradeflow(db, clock)
    then.deploy(list(files), actor="owner")
    then.add_user("cashier", ["finance"])
    monkeypatch.delenv("TRADEFLOW_MIN_TIMER_INTERVAL")
    return then


FLOOD = diagram(
    "flood",
    '<bpmn:startEvent id="s" /><bpmn:userTask id="answer" camunda:candidateGroups="finance" />'
    '<bpmn:boundaryEvent id="nag" attachedToRef="answer" cancelActivity="false">'
    f"{timer('timeCycle', 'R/PT0.001S')}</bpmn:boundaryEvent>"
    '<bpmn:endEvent id="e1" /><bpmn:endEvent id="e2" />'
    '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="answer" />'
    '<bpmn:sequenceFlow id="f2" sourceRef="answer" targetRef="e1" />'
    '<bpmn:sequenceFlow id="f3" sourceRef="nag" targetRef="e2" />',
)


def test_a_boundary_cycle_stored_too_fast_fails_its_instance_instead_of_flooding(
    db: Database, clock: FakeClock, clocks: Clocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    then = _deployed_under(db, clock, monkeypatch, FLOOD)
    iid = then.start("flood", actor="cashier")
    restarted = Tradeflow(db, clock)  # the service restarts with the minimum in force
    timers = Timers(restarted.runtime)
    for _ in range(3):
        clocks.advance(seconds=1, milliseconds=1)
        timers.fire_due()
    instance = restarted.instance(iid)
    assert instance.status == InstanceStatus.FAILED
    assert "'nag'" in (instance.error or "") and "minimum interval of 60 s" in (
        instance.error or ""
    )
    assert events(restarted, iid, "timer_fired") == []
    assert instance.next_wakeup_at is None


def test_a_start_timer_stored_too_fast_is_stopped_not_flooding(
    db: Database, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real time: a cycle of a millisecond would start hundreds of instances a second.
    The first due round stops the schedule and leaves one failed instance saying why."""
    _deployed_under(db, clock, monkeypatch, starting_on("flood", "timeCycle", "R/PT0.001S"))
    restarted = Tradeflow(db)  # the system clock: the schedule is due at once
    timers = Timers(restarted.runtime)
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        timers.fire_due()
    [iid] = started(restarted, "flood")
    instance = restarted.instance(iid)
    assert instance.status == InstanceStatus.FAILED
    assert "'tick'" in (instance.error or "") and "schedule was stopped" in (instance.error or "")
    with restarted.db.reading() as session:
        from engine.storage import StartTimer

        assert session.scalars(select(StartTimer)).all() == []


# a loop whose wait comes from the data: deploy cannot see how short it is
TICKING = diagram(
    "ticking",
    '<bpmn:startEvent id="s" /><bpmn:exclusiveGateway id="merge" />'
    '<bpmn:scriptTask id="count"><bpmn:script>n = get("n", 0) + 1</bpmn:script></bpmn:scriptTask>'
    f'<bpmn:intermediateCatchEvent id="tick">{timer("timeDuration", "every")}'
    "</bpmn:intermediateCatchEvent>"
    '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="merge" />'
    '<bpmn:sequenceFlow id="f2" sourceRef="merge" targetRef="count" />'
    '<bpmn:sequenceFlow id="f3" sourceRef="count" targetRef="tick" />'
    '<bpmn:sequenceFlow id="f4" sourceRef="tick" targetRef="merge" />',
)


def test_a_timer_that_waits_again_at_once_waits_the_minimum_interval(
    flow: Tradeflow, clocks: Clocks
) -> None:
    """A loop of millisecond waits computed from the data fires once per minimum
    interval, not a thousand times a second; the first wait is as drawn."""
    flow.deploy([TICKING], actor="owner")
    iid = flow.start("ticking", actor="cashier", variables={"every": "PT0.001S"})
    first_due = flow.instance(iid).next_wakeup_at
    assert first_due is not None and first_due.replace(tzinfo=UTC) < flow.clock.now() + timedelta(
        seconds=1
    )
    clocks.advance(seconds=1)
    timers = Timers(flow.runtime)
    assert [f.elements for f in timers.fire_due()] == [["tick"]]
    assert flow.variables(iid)["n"] == 2
    due = flow.instance(iid).next_wakeup_at
    minimum = Limits().min_timer_interval
    assert due is not None and due.replace(tzinfo=UTC) == flow.clock.now() + timedelta(
        seconds=minimum
    )
    assert timers.fire_due() == []  # nothing more until then
    clocks.advance(seconds=minimum)
    assert len(timers.fire_due()) == 1
    assert flow.variables(iid)["n"] == 3


def test_a_start_timer_that_cannot_even_fail_does_not_hold_up_the_other_timers(
    db: Database, clock: FakeClock, clocks: Clocks
) -> None:
    """A schedule whose process cannot be built (its stored spec unreadable) neither
    starts nor records a failed round; the round is skipped all the same, and the
    instances' own timers fire in the same sweep."""
    flow = Tradeflow(db, clock)
    flow.deploy([WAIT, spinning("hourly", start=timer("timeCycle", "R/PT1H"))], actor="owner")
    flow.add_user("cashier", ["finance"])
    waiting = flow.start("wait", actor="cashier")
    with db.transaction() as session:
        definition = session.scalars(select(Definition).where(Definition.key == "hourly")).one()
        definition.spec_json = '{"spec": 1}'
    clocks.advance(hours=2)
    fresh = Tradeflow(db, clock)  # another process: nothing cached
    fired = Timers(fresh.runtime).fire_due()
    assert [(f.instance_id, f.elements) for f in fired] == [(None, []), (waiting, ["pause"])]
    assert open_task(fresh, waiting, "after")
    with db.reading() as session:
        [schedule] = session.scalars(select(StartTimer)).all()
        assert schedule.next_at.replace(tzinfo=UTC) > clock.now()  # the round was skipped
    assert Timers(fresh.runtime).fire_due() == []


def test_a_cycle_behind_after_an_outage_catches_up_then_keeps_its_schedule(
    flow: Tradeflow, clocks: Clocks
) -> None:
    """Rounds missed while the service was down fire one sweep after another (each
    round's due time counts from the schedule), not one per minimum interval; each
    round nudges someone."""
    flow.deploy(
        [
            diagram(
                "reminded",
                '<bpmn:startEvent id="s" />'
                '<bpmn:userTask id="answer" camunda:candidateGroups="finance" />'
                '<bpmn:boundaryEvent id="remind" attachedToRef="answer" cancelActivity="false">'
                f"{timer('timeCycle', 'R/PT60S')}</bpmn:boundaryEvent>"
                '<bpmn:userTask id="nudge" camunda:candidateGroups="finance" />'
                '<bpmn:endEvent id="e" />'
                '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="answer" />'
                '<bpmn:sequenceFlow id="f2" sourceRef="answer" targetRef="e" />'
                '<bpmn:sequenceFlow id="f3" sourceRef="remind" targetRef="nudge" />'
                '<bpmn:endEvent id="nudged" />'
                '<bpmn:sequenceFlow id="f4" sourceRef="nudge" targetRef="nudged" />',
            )
        ],
        actor="owner",
    )
    iid = flow.start("reminded", actor="cashier")
    clocks.advance(minutes=10, seconds=1)  # down for ten rounds
    timers = Timers(flow.runtime)
    fired_at = []
    for second in range(180):  # then a sweep a second for three minutes
        if any(f.elements for f in timers.fire_due()):
            fired_at.append(second)
        clocks.advance(seconds=1)
    assert fired_at[:2] == [0, 1]  # catching up at once
    assert fired_at[-2:] == [60, 120]  # then on its schedule
    nudges = [t for t in flow.tasks_of(iid) if t.element_id == "nudge"]
    assert len(nudges) == 12  # a nudge a round: the ten missed, and two on time
    due = flow.instance(iid).next_wakeup_at
    assert due is not None and due.replace(tzinfo=UTC) <= flow.clock.now() + timedelta(minutes=1)


def test_an_instance_due_that_fires_nothing_is_looked_at_again_a_second_later(
    flow: Tradeflow, clocks: Clocks
) -> None:
    """Claimed at exactly its due time, when Spiff (which fires strictly after it) fires
    nothing: retried a second later, not claimed again and again in the same sweep."""
    iid = flow.start("wait", actor="cashier")
    due = flow.instance(iid).next_wakeup_at
    assert due is not None
    clocks.advance(minutes=10)  # exactly the due time
    fired = Timers(flow.runtime).fire_due(limit=50)
    assert [(f.instance_id, f.elements) for f in fired] == [(iid, [])]
    instance = flow.instance(iid)
    assert instance.next_wakeup_at is not None
    assert instance.next_wakeup_at.replace(tzinfo=UTC) == flow.clock.now() + timedelta(seconds=1)

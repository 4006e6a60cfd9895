"""The unit of work leaves no instance stuck: settling goes on until nothing more is
delivered, and an instance marked failed lets go of its work and can be cancelled."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import time_machine
from sqlalchemy import select

from engine.audit import instance_stream
from engine.audit.verification import verify_stream
from engine.errors import BudgetExceeded, InstanceNotRunning, TaskNotOpen
from engine.execution import Limits
from engine.queues import InboxQuery
from engine.runtime import LiveWorkflows
from engine.storage import (
    Database,
    Instance,
    InstanceStatus,
    Message,
    MessageStatus,
    MessageSubscription,
    TaskState,
)
from engine.timers.scheduler import Timers
from engine.tradeflow import Tradeflow
from tests.conftest import FakeClock
from tests.diagrams import diagram, message, messages, seq, timer, user

# counts ticks from the feed until the thirtieth, then someone counts the goods
TALLY = diagram(
    "tally",
    '<bpmn:startEvent id="start" /><bpmn:exclusiveGateway id="merge" />'
    f'<bpmn:intermediateCatchEvent id="tick">{message("tick", "n", earlier=True)}'
    '</bpmn:intermediateCatchEvent><bpmn:exclusiveGateway id="enough" />'
    + user("count")
    + '<bpmn:endEvent id="end" />'
    + seq("start", "merge")
    + seq("merge", "tick")
    + seq("tick", "enough")
    + seq("enough", "merge", "n &lt; 30")
    + seq("enough", "count", "n &gt;= 30")
    + seq("count", "end"),
    outside=messages("tick"),
)
# work to do, and beside it a timer whose path breaks the process when it fires; a
# message may still come for it
BREAKING = diagram(
    "breaking",
    '<bpmn:startEvent id="start" /><bpmn:parallelGateway id="fork" />'
    + user("work")
    + f'<bpmn:intermediateCatchEvent id="later">{timer("timeDuration", "PT1H")}'
    "</bpmn:intermediateCatchEvent>"
    f'<bpmn:intermediateCatchEvent id="answer">{message("answer", "reply")}'
    "</bpmn:intermediateCatchEvent>"
    '<bpmn:exclusiveGateway id="decide" /><bpmn:endEvent id="end" />'
    '<bpmn:endEvent id="work_end" /><bpmn:endEvent id="answer_end" />'
    + seq("start", "fork")
    + seq("fork", "work")
    + seq("fork", "later")
    + seq("fork", "answer")
    + seq("work", "work_end")
    + seq("answer", "answer_end")
    + seq("later", "decide")
    + seq("decide", "end", "no_such_variable"),
    outside=messages("answer"),
)


@pytest.fixture
def flow(db: Database, clock: FakeClock) -> Iterator[Tradeflow]:
    with time_machine.travel(clock.now(), tick=False):
        tf = Tradeflow(db, clock)
        tf.runtime.live = LiveWorkflows(size=0)  # every command restores from the database
        tf.deploy([TALLY, BREAKING], actor="owner")
        tf.add_user("cashier", ["finance"])
        yield tf


def _open(flow: Tradeflow, iid: int) -> list[str]:
    return [t.element_id for t in flow.tasks_of(iid) if t.state == TaskState.OPEN]


def test_settling_delivers_every_kept_message_the_instance_comes_to_wait_for(
    flow: Tradeflow,
) -> None:
    """Thirty ticks kept before the instance starts: each delivery brings it back to the
    catch event, and it takes them all in its first command, then opens the count."""
    for n in range(1, 31):
        kept = flow.correlate("tick", actor="feed", business_key="T-1", variables={"n": n})
        assert kept.buffered
    iid = flow.start("tally", actor="cashier", business_key="T-1")
    assert flow.variables(iid)["n"] == 30
    assert _open(flow, iid) == ["count"]
    assert [t.element_id for t in flow.inbox("cashier", InboxQuery()).tasks] == ["count"]
    with flow.db.reading() as session:
        statuses = session.scalars(select(Message.status)).all()
        subscriptions = session.scalars(select(MessageSubscription.name)).all()
    assert statuses == [MessageStatus.DELIVERED] * 30
    assert subscriptions == []  # it waits for no tick any more
    kinds = [e.kind for e in flow.history(iid)]
    assert kinds.count("message_received") == 30
    assert kinds[-1] == "task_created"
    [task] = flow.tasks_of(iid)
    flow.complete(task.id, actor="cashier", data={})
    assert flow.instance(iid).status == InstanceStatus.COMPLETED


def test_settling_that_runs_past_its_budget_ends_the_command_and_changes_nothing(
    flow: Tradeflow,
) -> None:
    """No fixed round count, but a budget: a command that would deliver more than its
    steps allow is refused whole, and the messages stay kept for a later try."""
    for n in range(1, 31):
        flow.correlate("tick", actor="feed", business_key="T-2", variables={"n": n})
    flow.runtime.limits = Limits(max_steps=40)
    with pytest.raises(BudgetExceeded):
        flow.start("tally", actor="cashier", business_key="T-2")
    with flow.db.reading() as session:
        statuses = set(session.scalars(select(Message.status)).all())
        started = session.scalars(select(Instance.id).where(Instance.business_key == "T-2"))
        assert statuses == {MessageStatus.BUFFERED}
        assert started.all() == []


def _broken(flow: Tradeflow, clock: FakeClock) -> int:
    """An instance failed by its timer while its work was open and it awaited a message."""
    iid = flow.start("breaking", actor="cashier", business_key="B-1")
    assert _open(flow, iid) == ["work"]
    clock.advance(hours=2)
    with time_machine.travel(clock.now(), tick=False):
        [fired] = Timers(flow.runtime).fire_due()
    assert fired.instance_id == iid
    assert flow.instance(iid).status == InstanceStatus.FAILED
    return iid


def test_a_failed_instance_lets_go_of_its_open_tasks(flow: Tradeflow, clock: FakeClock) -> None:
    iid = _broken(flow, clock)
    [task] = flow.tasks_of(iid)
    assert task.state == TaskState.CANCELLED
    assert flow.inbox("cashier", InboxQuery()).tasks == []
    with pytest.raises(TaskNotOpen):
        flow.complete(task.id, actor="cashier", data={})
    with flow.db.reading() as session:
        assert session.scalars(select(MessageSubscription)).all() == []
    events = flow.history(iid)
    assert [e.kind for e in events[-2:]] == ["task_cancelled", "instance_failed"]
    assert events[-2].data == {"task_id": task.id, "why": "instance failed"}
    assert "no_such_variable" in events[-1].data["error"]
    assert flow.instance(iid).next_wakeup_at is None
    with flow.db.reading() as session:
        assert verify_stream(session, instance_stream(iid)).ok


def test_a_failed_instance_can_be_cancelled(flow: Tradeflow, clock: FakeClock) -> None:
    iid = _broken(flow, clock)
    flow.cancel(iid, actor="boss", reason="reopened as B-2")
    instance = flow.instance(iid)
    assert instance.status == InstanceStatus.CANCELLED
    assert instance.error is not None and "no_such_variable" in instance.error  # kept
    cancelled = flow.history(iid)[-1]
    assert (cancelled.kind, cancelled.actor) == ("instance_cancelled", "boss")
    assert cancelled.data == {"reason": "reopened as B-2", "was": "failed"}
    with pytest.raises(InstanceNotRunning):
        flow.cancel(iid, actor="boss")
    # the business key is free again for the process's next instance
    assert flow.start("breaking", actor="cashier", business_key="B-1") != iid


def test_cancelling_an_instance_failed_before_failing_let_go_clears_its_tasks(
    flow: Tradeflow, clock: FakeClock
) -> None:
    """Instances failed by earlier versions kept their open tasks: cancelling one now
    takes them out of every inbox."""
    iid = flow.start("breaking", actor="cashier", business_key="B-9")
    with flow.db.transaction() as session:  # as the earlier fail left it
        instance = session.get_one(Instance, iid)
        instance.status, instance.error = InstanceStatus.FAILED, "timer could not run"
    [task] = flow.tasks_of(iid)
    assert task.state == TaskState.OPEN
    flow.cancel(iid, actor="boss")
    assert flow.tasks_of(iid)[0].state == TaskState.CANCELLED
    assert flow.inbox("cashier", InboxQuery()).tasks == []
    kinds = [e.kind for e in flow.history(iid)]
    assert kinds[-2:] == ["task_cancelled", "instance_cancelled"]
    with flow.db.reading() as session:
        assert verify_stream(session, instance_stream(iid)).ok

"""Time that can't jump: the scheduler's sweeps wait on the monotonic clock (a step of
the system clock neither stalls nor hurries them), and an instance's trail never goes
back in time when the clock does."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from engine.clock import as_utc
from engine.timers.scheduler import Scheduler, Timers
from tests.engine.conftest import Scenario


def test_a_step_back_of_the_system_clock_does_not_stall_the_sweeps(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """APScheduler's interval job waited by the wall clock: a step back of an hour put
    its next sweep an hour away, and it slept that long even after the clock was
    corrected."""
    sweeps: list[float] = []
    lock = threading.Lock()

    def counted(self: Scheduler) -> None:
        with lock:
            sweeps.append(time.monotonic())

    monkeypatch.setattr(Scheduler, "sweep", counted)
    scheduler = Scheduler(Timers(scenario.flow.runtime), sweep_seconds=0.05)
    scheduler.start()
    try:
        time.sleep(0.3)
        with time_machine.travel(datetime.now(UTC) - timedelta(hours=1), tick=True):
            stepped = time.monotonic()
            time.sleep(0.6)
            during = [t for t in sweeps if t > stepped]
        corrected = time.monotonic()
        time.sleep(0.3)
        after = [t for t in sweeps if t > corrected]
    finally:
        scheduler.shutdown()
    assert len(during) >= 5, during  # every 0.05 s, the clock's step notwithstanding
    assert len(after) >= 3, after


def test_an_instances_trail_keeps_its_order_when_the_clock_steps_back(
    scenario: Scenario,
) -> None:
    """The trail's events keep the time of the instance's last change until the clock
    passes it; what is not the trail (a task's times, its deadline) goes by the clock."""
    flow = scenario.flow
    iid = flow.start("document_review", actor="clerk")
    started = flow.history(iid)[-1].at
    flow.clock.advance(hours=-2)  # type: ignore[attr-defined]
    scenario.complete(iid, "prepare_documents", by="clerk", invoice_number="INV-1")
    events = flow.history(iid)
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert events[-1].at == started  # held at the last event's time, not two hours back
    [review] = [t for t in flow.tasks_of(iid) if t.element_id == "review_documents"]
    assert as_utc(review.created_at) == flow.clock.now()  # the task's time is the clock's
    flow.clock.advance(hours=3)  # type: ignore[attr-defined]
    flow.cancel(iid, actor="owner", reason="test")
    assert as_utc(flow.history(iid)[-1].at) == flow.clock.now()  # the clock's once past


def test_the_shared_streams_keep_their_order_when_the_clock_steps_back(
    scenario: Scenario,
) -> None:
    """The messages stream (kept messages) and the definitions stream (deploys) have no
    instance row: their last event's time is read with their head."""
    from sqlalchemy import select

    from engine.audit import DEFINITIONS_STREAM, MESSAGES_STREAM
    from engine.storage import AuditEvent
    from tests.diagrams import diagram, seq

    flow = scenario.flow
    iid = flow.start("payment_collection", actor="cashier", business_key="SO-7")
    first = flow.correlate(
        "payment_received",
        actor="bank",
        correlation={"order_ref": "SO-7-A"},
        variables={"amount_received": 1.0},
    )
    assert first.buffered and iid
    flow.clock.advance(hours=-2)  # type: ignore[attr-defined]
    flow.correlate(
        "payment_received",
        actor="bank",
        correlation={"order_ref": "SO-7-B"},
        variables={"amount_received": 2.0},
    )
    body = '<bpmn:startEvent id="s"/><bpmn:endEvent id="e"/>' + seq("s", "e")
    flow.deploy([diagram("after_the_step", body)], actor="owner")
    with flow.db.reading() as session:
        for stream in (MESSAGES_STREAM, DEFINITIONS_STREAM):
            times = session.scalars(
                select(AuditEvent.at).where(AuditEvent.stream == stream).order_by(AuditEvent.seq)
            ).all()
            assert len(times) >= 2 and list(times) == sorted(times), stream
            assert as_utc(times[-1]) > flow.clock.now()  # held, not two hours back

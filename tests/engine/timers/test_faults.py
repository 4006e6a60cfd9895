"""A fault while timers fire (the database busy or away, a statement cancelled) fails no
instance: what was being fired is tried again later, with a back-off."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import time_machine
from sqlalchemy import text

from engine.commands import instances
from engine.storage import InstanceStatus
from engine.timers.scheduler import RETRY_MAX, RETRY_MIN, Timers
from engine.tradeflow import Tradeflow
from tests.engine.conftest import Scenario
from tests.engine.storage.test_faults import SHORT, held_writer, with_waits


def _overdue(scenario: Scenario, key: str) -> int:
    """A collection whose payment_overdue timer is due now."""
    flow = scenario.flow
    iid = flow.start("payment_collection", actor="cashier", business_key=key)
    with time_machine.travel(flow.clock.now(), tick=False):  # Spiff dates its timer by it
        scenario.complete(iid, "issue_invoice", by="cashier", invoice_amount=1.0, currency="USD")
    flow.clock.advance(days=31)  # type: ignore[attr-defined]
    return iid


def _fire(flow: Tradeflow, timers: Timers | None = None) -> list[Any]:
    with time_machine.travel(flow.clock.now(), tick=False):
        return (timers or Timers(flow.runtime)).fire_due()


def test_a_database_held_elsewhere_fails_nothing_and_is_tried_again(
    scenario: Scenario, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process holds what the sweep needs (SQLite: the writer lock; PostgreSQL:
    the instance table): the sweep waits its lock wait, fires nothing, fails nothing,
    logs once; the next one, with the lock gone, fires."""
    iid = _overdue(scenario, "SO-801")
    short = Tradeflow(with_waits(scenario.flow.db, SHORT), scenario.flow.clock)
    caplog.set_level(logging.WARNING, "tradeflow.scheduler")
    timers = Timers(short.runtime)  # the scheduler's, kept from sweep to sweep
    with held_writer(scenario.flow.db):
        assert _fire(short, timers) == [] and _fire(short, timers) == []
    assert len([r for r in caplog.records if r.name == "tradeflow.scheduler"]) == 1
    assert short.instance(iid).status == InstanceStatus.RUNNING
    [fired] = _fire(short)
    assert (fired.instance_id, fired.elements) == (iid, ["payment_overdue"])
    assert scenario.open_elements(iid) == ["chase_payment"]
    short.db.dispose()


@pytest.mark.parametrize(
    "db", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_statement_cancelled_while_a_timer_fires_fails_nothing(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL cancels a statement of the firing (its statement_timeout here; a DBA's
    pg_cancel_backend alike): the firing is rolled back, the instance stays running and
    is tried again a moment later, when it fires."""
    flow = scenario.flow
    iid = _overdue(scenario, "SO-802")
    other = _overdue(scenario, "SO-803")
    real = instances.fire_timers
    cancelled: list[int] = []

    def cancelled_thrice(work: Any) -> list[str]:
        if work.instance.id == iid and len(cancelled) < 3:
            cancelled.append(iid)
            work.conn.execute(text("SET LOCAL statement_timeout = 50"))
            work.conn.execute(text("SELECT pg_sleep(1)"))
        return real(work)

    monkeypatch.setattr(instances, "fire_timers", cancelled_thrice)
    timers = Timers(flow.runtime)  # the scheduler's, kept from sweep to sweep
    fired = _fire(flow, timers)
    assert [f.instance_id for f in fired] == [other]  # the batch went on without it
    waits = []
    for _ in range(3):
        instance = flow.instance(iid)
        assert instance.status == InstanceStatus.RUNNING and instance.error is None
        assert instance.next_wakeup_at is not None
        waits.append(instance.next_wakeup_at - flow.clock.now())
        flow.clock.advance(seconds=waits[-1].total_seconds())  # type: ignore[attr-defined]
        fired = _fire(flow, timers)
    # tried again after 1 s, then twice as long each time the fault is met again
    assert waits == [RETRY_MIN, RETRY_MIN * 2, RETRY_MIN * 4] and len(cancelled) == 3
    assert "instance_failed" not in scenario.kinds(iid)
    [again] = fired
    assert (again.instance_id, again.elements) == (iid, ["payment_overdue"])
    assert scenario.open_elements(iid) == ["chase_payment"]
    # after a long outage the wait stays at its cap (2**60 s is past any timedelta)
    late = _overdue(scenario, "SO-805")
    timers._retries[late] = 60
    cancelled.clear()
    monkeypatch.setattr(
        instances, "fire_timers", lambda work: cancelled_thrice(work) if work.instance.id != late
        else (work.conn.execute(text("SET LOCAL statement_timeout = 50")),
              work.conn.execute(text("SELECT pg_sleep(1)")), [])[-1],
    )  # fmt: skip
    assert _fire(flow, timers) == []
    delay = flow.instance(late).next_wakeup_at - flow.clock.now()  # type: ignore[operator]
    assert delay == RETRY_MAX


def test_a_diagram_that_fails_on_its_timer_still_fails(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a fault is retried: an error of the instance's own still fails it."""
    iid = _overdue(scenario, "SO-804")

    def broken(work: Any) -> list[str]:
        raise KeyError("no_such_variable")

    monkeypatch.setattr(instances, "fire_timers", broken)
    _fire(scenario.flow)
    instance = scenario.flow.instance(iid)
    assert instance.status == InstanceStatus.FAILED
    assert instance.error is not None and "no_such_variable" in instance.error

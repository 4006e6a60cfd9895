"""Messages from the bank feed: correlate, merge variables, keep early ones, report the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from engine.audit import MESSAGES_STREAM
from engine.commands import messages
from engine.errors import (
    BusinessKeyTaken,
    DiagramInvalid,
    MessageInvalid,
    MessageUndeliverable,
    ProcessFailed,
)
from engine.storage import AuditEvent, Message, MessageStatus
from tests.diagrams import diagram, message, seq
from tests.diagrams import messages as declared
from tests.engine.conftest import Scenario, read


def invoiced(scenario: Scenario, key: str, amount: float = 1000.0) -> int:
    iid = scenario.flow.start("payment_collection", actor="cashier", business_key=key)
    scenario.complete(iid, "issue_invoice", by="cashier", invoice_amount=amount, currency="USD")
    return iid


def test_a_payment_reaches_the_waiting_instance_by_business_key(scenario: Scenario) -> None:
    flow = scenario.flow
    other = invoiced(scenario, "SO-8")
    iid = invoiced(scenario, "SO-9")
    result = flow.correlate(
        "payment_received",
        actor="bank",
        business_key="SO-9",
        variables={"amount_received": 1000.0, "bank_ref": "TT-1"},
    )
    assert (result.instance_id, result.buffered) == (iid, False)
    assert scenario.open_elements(iid) == ["write_off"]
    assert scenario.open_elements(other) == []  # still waiting
    variables = flow.variables(iid)
    assert (variables["amount_received"], variables["bank_ref"]) == (1000.0, "TT-1")
    received = next(e for e in flow.history(iid) if e.kind == "message_received")
    assert received.actor == "bank"
    assert received.data["variables"] == {"amount_received": 1000.0, "bank_ref": "TT-1"}


def test_a_short_payment_goes_to_collections(scenario: Scenario) -> None:
    iid = invoiced(scenario, "SO-10")
    scenario.flow.correlate(
        "payment_received", actor="bank", business_key="SO-10", variables={"amount_received": 400.0}
    )
    assert scenario.open_elements(iid) == ["chase_payment"]


def test_a_message_before_its_catch_event_is_kept_and_delivered(scenario: Scenario) -> None:
    flow = scenario.flow
    iid = flow.start("payment_collection", actor="cashier", business_key="SO-11")
    early = flow.correlate(
        "payment_received",
        actor="bank",
        business_key="SO-11",
        variables={"amount_received": 1000.0},
    )
    assert (early.buffered, early.instance_id) == (True, None)
    assert scenario.open_elements(iid) == ["issue_invoice"]
    scenario.complete(iid, "issue_invoice", by="cashier", invoice_amount=1000.0, currency="USD")
    assert scenario.open_elements(iid) == ["write_off"]
    with flow.db.reading() as session:
        stored = session.get_one(Message, early.message_id)
        assert (stored.status, stored.instance_id) == (MessageStatus.DELIVERED, iid)
        buffered = session.scalars(
            select(AuditEvent).where(AuditEvent.stream == MESSAGES_STREAM)
        ).all()
    assert [e.kind for e in buffered] == ["message_buffered"]
    assert "message_received" in scenario.kinds(iid)


def test_correlation_values_pick_the_instance(scenario: Scenario) -> None:
    flow = scenario.flow
    first = flow.start("payment_collection", actor="cashier", business_key="SO-12")
    scenario.complete(first, "issue_invoice", by="cashier", invoice_amount=10.0, currency="EUR")
    second = invoiced(scenario, "SO-13")
    result = flow.correlate(
        "payment_received",
        actor="bank",
        correlation={"currency": "EUR"},
        variables={"amount_received": 10.0},
    )
    assert result.instance_id == first
    assert scenario.open_elements(second) == []


def test_an_ambiguous_message_is_refused_and_changes_nothing(scenario: Scenario) -> None:
    flow = scenario.flow
    a, b = invoiced(scenario, "SO-14"), invoiced(scenario, "SO-15")
    with pytest.raises(MessageUndeliverable, match="2 instances"):
        flow.correlate(
            "payment_received",
            actor="bank",
            correlation={"currency": "USD"},
            variables={"amount_received": 1.0},
        )
    assert scenario.open_elements(a) == scenario.open_elements(b) == []


def test_messages_nobody_can_take_are_refused(scenario: Scenario) -> None:
    flow = scenario.flow
    with pytest.raises(MessageUndeliverable, match="no deployed process"):
        flow.correlate("parcel_lost", actor="bank", business_key="SO-1")
    with pytest.raises(MessageInvalid):
        flow.correlate("payment_received", actor="bank")  # no correlation at all
    with pytest.raises(MessageInvalid):
        flow.correlate(
            "payment_received", actor="bank", business_key="SO-1", variables={"__class__": 1}
        )
    with flow.db.reading() as session:
        assert session.scalars(select(Message)).all() == []


def test_a_kept_message_expires_and_is_reported(scenario: Scenario) -> None:
    flow = scenario.flow
    iid = flow.start("payment_collection", actor="cashier", business_key="SO-16")
    kept = flow.correlate(
        "payment_received",
        actor="bank",
        business_key="SO-16",
        variables={"amount_received": 5.0},
        ttl=timedelta(days=1),
    )
    flow.clock.advance(days=2)  # type: ignore[attr-defined]
    expired = messages.expire(flow.runtime)
    assert [m.id for m in expired] == [kept.message_id]
    assert [(m.id, m.status) for m in messages.undelivered(flow.runtime)] == [
        (kept.message_id, MessageStatus.EXPIRED)
    ]
    scenario.complete(iid, "issue_invoice", by="cashier", invoice_amount=5.0, currency="USD")
    assert scenario.open_elements(iid) == []  # the expired payment is not delivered
    assert flow.verify(MESSAGES_STREAM).ok


def test_an_overdue_payment_timer_fires_when_woken(scenario: Scenario) -> None:
    flow = scenario.flow
    iid = invoiced(scenario, "SO-17")
    due = flow.instance(iid).next_wakeup_at
    assert due is not None
    now = datetime.now(UTC)
    assert timedelta(days=29, hours=23) < due.replace(tzinfo=UTC) - now <= timedelta(days=30)
    assert flow.wake(iid) == []  # not due yet
    with time_machine.travel(now + timedelta(days=31), tick=False):
        fired = flow.wake(iid)
    assert fired
    assert scenario.open_elements(iid) == ["chase_payment"]
    assert "timer_fired" in scenario.kinds(iid)
    assert flow.instance(iid).next_wakeup_at is None


def test_a_message_the_instance_cannot_digest_leaves_nothing(scenario: Scenario) -> None:
    flow = scenario.flow
    iid = invoiced(scenario, "SO-18")
    state = flow.instance(iid).state
    with pytest.raises(ProcessFailed, match="amount_received"):
        flow.correlate(
            "payment_received", actor="bank", business_key="SO-18", variables={"bank_ref": "TT-9"}
        )  # no amount: the gateway cannot decide
    assert flow.instance(iid).state == state
    with flow.db.reading() as session:
        assert session.scalars(select(Message)).all() == []
    assert "message_received" not in scenario.kinds(iid)


# a task, then a second one that a "stop" message takes away (an interrupting boundary)
STOPPABLE = (
    "stoppable.bpmn",
    b'<?xml version="1.0" encoding="UTF-8"?><bpmn:definitions '
    b'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    b'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d_stoppable" '
    b'targetNamespace="http://bpmn.io/schema/bpmn">'
    b'<bpmn:process id="stoppable" isExecutable="true"><bpmn:startEvent id="s" />'
    b'<bpmn:userTask id="first" camunda:candidateGroups="finance" />'
    b'<bpmn:userTask id="second" camunda:candidateGroups="finance" />'
    b'<bpmn:boundaryEvent id="stopped" attachedToRef="second">'
    b'<bpmn:messageEventDefinition messageRef="m_stop" /></bpmn:boundaryEvent>'
    b'<bpmn:endEvent id="done" /><bpmn:endEvent id="halted" />'
    b'<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="first" />'
    b'<bpmn:sequenceFlow id="f2" sourceRef="first" targetRef="second" />'
    b'<bpmn:sequenceFlow id="f3" sourceRef="second" targetRef="done" />'
    b'<bpmn:sequenceFlow id="f4" sourceRef="stopped" targetRef="halted" />'
    b'</bpmn:process><bpmn:message id="m_stop" name="stop" /></bpmn:definitions>',
)


def test_a_task_made_and_taken_away_in_one_command_is_cancelled(scenario: Scenario) -> None:
    """Completing ``first`` makes ``second``, and the stop kept for it takes it away in
    the same command: the new task's row is cancelled there too (on PostgreSQL it is
    written with the command's last writes, after the cancel)."""
    flow = scenario.flow
    flow.deploy([STOPPABLE], actor="owner")
    iid = flow.start("stoppable", actor="cashier", business_key="STOP-1")
    kept = flow.correlate("stop", actor="bank", business_key="STOP-1")
    assert kept.buffered
    scenario.complete(iid, "first", by="cashier")
    assert flow.instance(iid).status == "completed"
    states = {t.element_id: t.state for t in flow.tasks_of(iid)}
    assert states == {"first": "completed", "second": "cancelled"}
    assert flow.inbox("cashier").total == 0
    assert scenario.kinds(iid).count("task_cancelled") == 1


# --- a message may only say what it is for ------------------------------------------------


def test_a_payment_may_not_rewrite_the_invoice(scenario: Scenario) -> None:
    """payment_received declares amount_received and bank_ref: an invoice_amount of 1,000
    rode in on it and overwrote finance's 49,000, and the order went paid in full."""
    flow = scenario.flow
    iid = invoiced(scenario, "SO-30", amount=49_000.0)
    state = flow.instance(iid).state
    with pytest.raises(MessageInvalid, match="may not set invoice_amount") as refused:
        flow.correlate(
            "payment_received",
            actor="bank",
            business_key="SO-30",
            variables={"amount_received": 1000.0, "invoice_amount": 1000.0},
        )
    assert refused.value.details["errors"] == {
        "variables": {
            "invoice_amount": [
                "no catch event of 'payment_received' takes it "
                "(their messageVariables: amount_received, bank_ref)"
            ]
        }
    }
    assert flow.instance(iid).state == state  # nothing delivered, nothing kept
    with flow.db.reading() as session:
        assert session.scalars(select(Message)).all() == []
    # kept for later is held to the same rule
    with pytest.raises(MessageInvalid, match="invoice_amount"):
        flow.correlate(
            "payment_received", actor="bank", business_key="SO-31", variables={"invoice_amount": 1}
        )
    assert flow.variables(iid)["invoice_amount"] == 49_000.0


def test_null_never_correlates(scenario: Scenario) -> None:
    flow = scenario.flow
    iid = invoiced(scenario, "SO-32")  # has no variable "order_ref"
    with pytest.raises(MessageInvalid, match="may not be null: order_ref"):
        flow.correlate(
            "payment_received",
            actor="bank",
            correlation={"order_ref": None},
            variables={"amount_received": 1.0},
        )
    with pytest.raises(MessageInvalid, match="1 to 255 characters"):
        flow.correlate("payment_received", actor="bank", business_key="")
    assert scenario.open_elements(iid) == []  # still waiting for its own payment


def test_a_null_kept_before_the_rule_matches_no_instance(scenario: Scenario) -> None:
    """A message kept with a null correlation value (as the service took them before
    null was refused) once went to the next instance lacking that variable: an
    unrelated order. It now waits for an instance that has the value, which none has."""
    flow = scenario.flow
    now = flow.clock.now()
    with flow.db.transaction() as session:
        kept = Message(
            name="payment_received",
            business_key=None,
            correlation={"order_ref": None},
            payload={"amount_received": 1000.0},
            status=MessageStatus.BUFFERED,
            sender="bank",
            received_at=now,
            expires_at=now + timedelta(days=7),
        )
        session.add(kept)
        session.flush()
        kept_id = kept.id
    iid = invoiced(scenario, "SO-33")  # it has no order_ref
    assert scenario.open_elements(iid) == []  # still waiting for its own payment
    with flow.db.reading() as session:
        assert session.get_one(Message, kept_id).status == MessageStatus.BUFFERED


def test_the_trail_names_the_sender_of_a_kept_message(scenario: Scenario) -> None:
    """Kept, then handed over inside the cashier's completion: still the bank's message."""
    flow = scenario.flow
    iid = flow.start("payment_collection", actor="cashier", business_key="SO-34")
    flow.correlate(
        "payment_received",
        actor="bank",
        business_key="SO-34",
        variables={"amount_received": 1000.0},
    )
    scenario.complete(iid, "issue_invoice", by="cashier", invoice_amount=1000.0, currency="USD")
    [received] = [e for e in flow.history(iid) if e.kind == "message_received"]
    assert (received.actor, received.data["sender"]) == ("bank", "bank")


def test_a_version_that_takes_less_drops_the_rest_and_says_so(scenario: Scenario) -> None:
    """A message kept under a version whose catch takes bank_ref, delivered to a newer
    version that no longer takes it (and takes messages from before its instance
    started): bank_ref is left out, and the trail says so."""
    flow = scenario.flow
    name, xml = read("payment_collection.bpmn")
    xml = xml.replace(
        b'<camunda:property name="messageVariables" value="amount_received, bank_ref" />',
        b'<camunda:property name="messageVariables" value="amount_received" />'
        b'<camunda:property name="acceptsEarlierMessages" value="true" />',
    )
    flow.deploy([(name, xml)], actor="owner")
    flow.correlate(  # the older version still takes bank_ref: kept
        "payment_received",
        actor="bank",
        business_key="SO-35",
        variables={"amount_received": 1000.0, "bank_ref": "TT-35"},
    )
    iid = invoiced(scenario, "SO-35")
    assert "bank_ref" not in flow.variables(iid)
    [received] = [e for e in flow.history(iid) if e.kind == "message_received"]
    assert received.data["variables"] == {"amount_received": 1000.0}
    assert received.data["dropped"] == ["bank_ref"]


def test_two_running_instances_of_a_process_may_not_share_a_business_key(
    scenario: Scenario,
) -> None:
    """Messages find an instance by its key: a second running payment_collection of
    SO-36 would leave the real one's payment undeliverable (409 for ever)."""
    flow = scenario.flow
    first = invoiced(scenario, "SO-36")
    with pytest.raises(BusinessKeyTaken, match="business key 'SO-36'"):
        flow.start("payment_collection", actor="cashier", business_key="SO-36")
    assert (
        flow.correlate(
            "payment_received",
            actor="bank",
            business_key="SO-36",
            variables={"amount_received": 1e3},
        ).instance_id
        == first
    )
    scenario.complete(first, "write_off", by="cashier", fx_rate=7.1, settled_amount_cny=7100)
    again = flow.start("payment_collection", actor="cashier", business_key="SO-36")
    assert again != first  # once it has ended, the key is free again
    # a process that catches no message may repeat a key: nothing correlates by it
    reviews = [flow.start("document_review", actor="clerk", business_key="SO-36") for _ in "ab"]
    assert len(set(reviews)) == 2


def _catching(pid: str, name: str) -> tuple[str, bytes]:
    return diagram(
        pid,
        '<bpmn:startEvent id="start" />'
        f'<bpmn:intermediateCatchEvent id="wait">{message(name)}</bpmn:intermediateCatchEvent>'
        '<bpmn:endEvent id="end" />' + seq("start", "wait") + seq("wait", "end"),
        outside=declared(name),
    )


def test_processes_that_catch_the_same_message_may_not_share_a_business_key(
    scenario: Scenario,
) -> None:
    """The message would match both: the second start is refused, whichever process it
    is of, while one that catches other messages may use the key."""
    flow = scenario.flow
    flow.deploy(
        [_catching("ping_a", "ping"), _catching("ping_b", "ping"), _catching("pong", "pong")],
        actor="owner",
    )
    first = flow.start("ping_a", actor="clerk", business_key="SO-40")
    with pytest.raises(BusinessKeyTaken, match="both catch ping"):
        flow.start("ping_b", actor="clerk", business_key="SO-40")
    flow.start("pong", actor="clerk", business_key="SO-40")
    assert flow.correlate("ping", actor="bank", business_key="SO-40").instance_id == first
    assert flow.start("ping_b", actor="clerk", business_key="SO-40") != first  # it ended


def test_a_repeat_of_a_message_that_expired_kept_says_so(scenario: Scenario) -> None:
    flow = scenario.flow
    flow.start("payment_collection", actor="cashier", business_key="SO-81")
    sent = {
        "actor": "bank",
        "business_key": "SO-81",
        "variables": {"amount_received": 5.0},
        "ttl": timedelta(hours=1),
        "idempotency_key": " TT-81 ",  # the same key as "TT-81": spaces are not part of it
    }
    first = flow.correlate("payment_received", **sent)  # type: ignore[arg-type]
    assert first.buffered
    flow.clock.advance(hours=2)
    assert [m.id for m in messages.expire(flow.runtime)] == [first.message_id]
    with pytest.raises(MessageUndeliverable, match=r"expired kept.*new key"):
        flow.correlate("payment_received", **{**sent, "idempotency_key": "TT-81"})  # type: ignore[arg-type]


def test_a_duplicate_kept_while_the_order_ran_is_not_taken_by_its_next_invoice(
    scenario: Scenario,
) -> None:
    """The bank repeats a payment while the collection that took it still runs: the copy
    is kept (the instance may yet wait again), but the order's next collection, started
    after it came, does not take it: it was not sent for that one."""
    flow = scenario.flow
    paid = {"amount_received": 1000.0, "bank_ref": "TT-90"}
    first = invoiced(scenario, "SO-90")
    flow.correlate("payment_received", actor="bank", business_key="SO-90", variables=paid)
    copy = flow.correlate("payment_received", actor="bank", business_key="SO-90", variables=paid)
    assert copy.buffered  # the first is at write_off: kept for it
    scenario.complete(first, "write_off", by="cashier", fx_rate=7.1, settled_amount_cny=7100)
    flow.clock.advance(minutes=1)  # type: ignore[attr-defined]
    balance = invoiced(scenario, "SO-90")
    assert scenario.open_elements(balance) == []  # still waiting for its own payment
    with flow.db.reading() as session:
        assert session.get_one(Message, copy.message_id).status == MessageStatus.BUFFERED
    assert messages.hand_over_kept(flow.runtime).handed == []  # nor does the sweep hand it
    own = flow.correlate("payment_received", actor="bank", business_key="SO-90", variables=paid)
    assert own.instance_id == balance


def test_a_catch_may_take_messages_from_before_its_instance_started(scenario: Scenario) -> None:
    """``acceptsEarlierMessages`` on the catch: a prepayment sent before the collection
    starts is kept for it, and taken when it comes to wait."""
    flow = scenario.flow
    name, xml = read("payment_collection.bpmn")
    early = b'<camunda:property name="acceptsEarlierMessages" value="true" />'
    xml = xml.replace(
        b'<camunda:property name="messageVariables" value="amount_received, bank_ref" />',
        b'<camunda:property name="messageVariables" value="amount_received, bank_ref" />' + early,
    )
    flow.deploy([(name, xml)], actor="owner")
    kept = flow.correlate(
        "payment_received", actor="bank", business_key="SO-91", variables={"amount_received": 1e3}
    )
    assert (kept.buffered, kept.instance_id) == (True, None)
    flow.clock.advance(hours=1)  # type: ignore[attr-defined]
    iid = invoiced(scenario, "SO-91")
    assert scenario.open_elements(iid) == ["write_off"]
    with flow.db.reading() as session:
        assert session.get_one(Message, kept.message_id).instance_id == iid


def test_accepts_earlier_messages_is_true_or_false(scenario: Scenario) -> None:
    name, xml = read("payment_collection.bpmn")
    xml = xml.replace(
        b'<camunda:property name="messageVariables" value="amount_received, bank_ref" />',
        b'<camunda:property name="messageVariables" value="amount_received, bank_ref" />'
        b'<camunda:property name="acceptsEarlierMessages" value="yes" />',
        1,
    )
    with pytest.raises(DiagramInvalid, match="acceptsEarlierMessages is true or false, not 'yes'"):
        scenario.flow.deploy([(name, xml)], actor="owner")


def test_a_message_by_values_alone_with_no_instance_running_is_refused(
    scenario: Scenario,
) -> None:
    """Correlated by values only, with no instance of a catching process running and no
    catch taking earlier messages: refused (409), nothing kept."""
    with pytest.raises(MessageUndeliverable, match="no instance of a process that catches it"):
        scenario.flow.correlate(
            "payment_received", actor="bank", correlation={"currency": "EUR"}, variables={}
        )
    with scenario.flow.db.reading() as session:
        assert session.scalars(select(Message)).all() == []

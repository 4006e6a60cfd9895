"""Payment collection: paid on time, paid short, overdue with a reminder and escalation,
and the due date taken from the contract's payment terms."""

from __future__ import annotations

from engine.storage import InstanceStatus
from tests.content.conftest import INVOICE, SETTLED, Trade


def invoiced(trade: Trade, key: str, **variables: object) -> int:
    iid = trade.start("payment_collection", key, by="cashier", **variables)
    trade.do(iid, "issue_invoice", "cashier", **INVOICE)
    assert trade.open(iid) == []  # waiting for the money or the due date
    return iid


def test_payment_in_full_is_settled_and_written_off(trade: Trade) -> None:
    iid = invoiced(trade, "SO-1")
    assert trade.send("payment_received", "SO-1", amount_received=49_000.0) == iid
    assert trade.open(iid) == ["write_off"]
    trade.do(iid, "write_off", "cashier", **SETTLED)
    assert trade.status(iid) == InstanceStatus.COMPLETED
    assert trade.fired(iid) == []


def test_a_short_payment_goes_to_risk_and_compliance(trade: Trade) -> None:
    iid = invoiced(trade, "SO-2")
    trade.send("payment_received", "SO-2", amount_received=30_000.0)
    assert trade.open(iid) == ["chase_payment"]
    trade.do(iid, "chase_payment", "risk", outcome="recovered", collection_note="Balance paid")
    assert trade.open(iid) == ["write_off"]


def test_overdue_then_reminded_then_paid(trade: Trade) -> None:
    iid = invoiced(trade, "SO-3")  # no payment terms given: 30 days
    assert trade.wait(iid, days=29, hours=23) == []
    assert trade.wait(iid, hours=1, minutes=1) == ["payment_overdue"]
    assert trade.open(iid) == ["send_payment_reminder"]
    trade.do(iid, "send_payment_reminder", "cashier", reminder_channel="email")
    trade.send("payment_received", "SO-3", amount_received=49_000.0)
    assert trade.open(iid) == ["write_off"]


def test_overdue_a_week_after_the_reminder_escalates_and_may_end_as_bad_debt(
    trade: Trade,
) -> None:
    iid = invoiced(trade, "SO-4")
    trade.wait(iid, days=30, minutes=1)
    trade.do(iid, "send_payment_reminder", "cashier", reminder_channel="call")
    assert trade.wait(iid, days=6) == []
    assert trade.wait(iid, days=1, minutes=1) == ["reminder_lapsed"]
    assert trade.open(iid) == ["chase_payment"]
    trade.do(iid, "chase_payment", "risk", outcome="bad_debt", collection_note="Insolvent")
    assert trade.status(iid) == InstanceStatus.COMPLETED
    assert trade.fired(iid) == ["payment_overdue", "reminder_lapsed"]
    ended = [e for e in trade.flow.history(iid) if e.kind == "instance_completed"]
    assert ended and ended[0].data["variables"]["outcome"] == "bad_debt"


def test_the_due_date_comes_from_the_payment_terms(trade: Trade) -> None:
    iid = invoiced(trade, "SO-5", payment_term_days=60)
    assert trade.wait(iid, days=59) == []
    assert trade.wait(iid, days=1, minutes=1) == ["payment_overdue"]


def test_a_late_payment_after_escalation_is_recovered_by_collections(trade: Trade) -> None:
    iid = invoiced(trade, "SO-6")
    trade.wait(iid, days=30, minutes=1)
    trade.do(iid, "send_payment_reminder", "cashier", reminder_channel="letter")
    trade.wait(iid, days=7, minutes=1)
    trade.do(iid, "chase_payment", "risk", outcome="recovered", collection_note="Paid via agent")
    trade.do(iid, "write_off", "cashier", **SETTLED)
    assert trade.status(iid) == InstanceStatus.COMPLETED

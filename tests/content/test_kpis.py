"""The department's KPIs, computed from a history run here through the shipped processes,
whose values are known in advance."""

from __future__ import annotations

from engine import analytics
from tests.content.conftest import (
    BOOKED,
    CLEARED,
    DECLARED,
    DRAFT,
    INVOICE,
    PASSED,
    PLAN,
    PREPARED,
    PRODUCED,
    QUOTE,
    SEND,
    SETTLED,
    SIGN,
    Trade,
)
from tests.content.test_customer_development import screened


def order(trade: Trade, key: str, *, paid_after_days: float, complaint: bool, score: str) -> int:
    """An order through every stage: sent 3 h after the inquiry, shipped 10 days after
    signing, paid ``paid_after_days`` after shipping (or chased to bad debt)."""
    iid = trade.start("inquiry_to_collection", key)
    trade.wait(iid, hours=3)
    trade.do(iid, "prepare_quotation", "sales", **QUOTE)
    trade.do(iid, "send_quotation", "sales", **SEND)
    trade.send("quotation_accepted", key, by="sales")
    trade.do(iid, "draft_contract", "ops", **DRAFT)
    trade.do(iid, "review_contract", "risk", **CLEARED)
    trade.do(iid, "sign_contract", "ops", **SIGN)
    trade.wait(iid, days=10)
    for element, by, data in (
        ("coordinate_production", "ops", PLAN), ("produce_order", "factory", PRODUCED),
        ("inspect_goods", "qc", PASSED), ("book_shipment", "docs", BOOKED),
        ("prepare_documents", "docs", PREPARED),
        ("review_documents", "risk", {"documents_ok": True}),
        ("declare_customs", "docs", DECLARED),
    ):  # fmt: skip
        trade.do(iid, element, by, **data)
    trade.do(iid, "satisfaction_survey", "ops", satisfaction=score, complaint=complaint)
    if complaint:
        trade.do(iid, "investigate_complaint", "qc", root_cause="packing", findings="Crushed")
        trade.do(iid, "resolve_complaint", "ops", resolution="none", compensation_amount=0.0)
    trade.do(iid, "issue_invoice", "cashier", **INVOICE)
    if paid_after_days < 30:  # grade B: 30 days to pay
        trade.wait(iid, days=paid_after_days)
        trade.send("payment_received", key, amount_received=49_000.0)
        trade.do(iid, "write_off", "cashier", **SETTLED)
    else:
        trade.wait(iid, days=30, minutes=1)
        trade.do(iid, "send_payment_reminder", "cashier", reminder_channel="email")
        trade.wait(iid, days=7, minutes=1)
        trade.do(iid, "chase_payment", "risk", outcome="bad_debt", collection_note="Gone")
    return iid


def test_the_measures_of_a_known_history(trade: Trade) -> None:
    order(trade, "SO-1", paid_after_days=5, complaint=False, score="5")
    order(trade, "SO-2", paid_after_days=12, complaint=True, score="2")
    order(trade, "SO-3", paid_after_days=40, complaint=False, score="4")
    screened(trade, "L-1", annual_volume=2_000_000, margin_percent=18, credit_score=760,
             qualified=True)  # fmt: skip  # grade A: a key account first
    lead = trade.flow.tasks_of(trade.flow.inbox("boss").tasks[0].instance_id)
    trade.do(lead[-1].instance_id, "assign_key_account", "boss", account_manager="Li",
             service_level="premium")  # fmt: skip
    trade.do(lead[-1].instance_id, "create_customer_record", "sales", customer_id="C-1001",
             contact_name="Anna", preferred_currency="EUR")  # fmt: skip

    with trade.flow.db.reading() as session:
        kpis = analytics.kpis(session, analytics.ElementQuery(), trade.clock.now())
    assert (kpis.quotation_turnaround_p50, kpis.quotation_turnaround_p90) == (3 * 3600,) * 2
    assert kpis.contract_to_shipped_p50 == 10 * 86400  # signed -> cleared for shipment
    # of 5 and 12 days (SO-3 was never paid); nearest rank: the lower of two
    assert kpis.shipped_to_paid_p50 == 5 * 86400
    assert kpis.overdue_collection_rate == 1 / 3 and kpis.bad_debt_rate == 1 / 3
    assert kpis.complaint_rate == 1 / 3 and kpis.satisfaction_mean == (5 + 2 + 4) / 3
    assert kpis.new_customers_by_grade == {"A": 1}
    assert kpis.document_first_pass_rate == 1.0

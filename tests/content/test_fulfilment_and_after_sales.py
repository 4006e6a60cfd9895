"""Order fulfilment (production, inspection with rework, shipment, shipping documents with
maker-checker and rework, customs) and after-sales (survey, complaint, compensation)."""

from __future__ import annotations

import pytest

from engine.errors import SeparationOfDuty
from engine.storage import InstanceStatus
from tests.content.conftest import (
    BOOKED,
    DECLARED,
    FAILED,
    PASSED,
    PLAN,
    PREPARED,
    PRODUCED,
    REWORKED,
    Trade,
)


def produced(trade: Trade, key: str) -> int:
    iid = trade.start("order_fulfilment", key, by="ops")
    trade.do(iid, "coordinate_production", "ops", **PLAN)
    trade.do(iid, "produce_order", "factory", **PRODUCED)
    assert trade.open(iid) == ["inspect_goods"]
    return iid


def test_goods_that_pass_inspection_are_shipped_and_declared(trade: Trade) -> None:
    iid = produced(trade, "SO-10")
    trade.do(iid, "inspect_goods", "qc", **PASSED)
    trade.do(iid, "book_shipment", "docs", **BOOKED)
    trade.do(iid, "prepare_documents", "docs", **PREPARED)
    trade.do(iid, "review_documents", "risk", documents_ok=True)
    assert trade.open(iid) == ["declare_customs"]
    trade.do(iid, "declare_customs", "docs", **DECLARED)
    assert trade.status(iid) == InstanceStatus.COMPLETED
    assert trade.variables(iid)["booking_number"] == "COS6612345"


def test_failed_inspection_goes_to_rework_until_it_passes(trade: Trade) -> None:
    iid = produced(trade, "SO-11")
    for _ in range(2):
        trade.do(iid, "inspect_goods", "qc", **FAILED)
        assert trade.open(iid) == ["rework_goods"]
        trade.do(iid, "rework_goods", "factory", **REWORKED)
        assert trade.open(iid) == ["inspect_goods"]
    trade.do(iid, "inspect_goods", "qc", **PASSED)
    assert trade.open(iid) == ["book_shipment"]
    completed = [e.element_id for e in trade.flow.history(iid) if e.kind == "task_completed"]
    assert completed.count("inspect_goods") == 3 and completed.count("rework_goods") == 2


def test_rejected_documents_go_back_to_their_maker(trade: Trade) -> None:
    iid = produced(trade, "SO-12")
    trade.do(iid, "inspect_goods", "qc", **PASSED)
    trade.do(iid, "book_shipment", "docs", **BOOKED)
    trade.do(iid, "prepare_documents", "docs", **PREPARED)
    trade.do(iid, "review_documents", "risk", documents_ok=False, review_comment="B/L missing")
    assert trade.open(iid) == ["prepare_documents"]
    trade.do(iid, "prepare_documents", "docs", **PREPARED, bill_of_lading_number="BL-77")
    trade.do(iid, "review_documents", "risk", documents_ok=True)
    assert trade.open(iid) == ["declare_customs"]


def test_the_maker_may_not_check_their_own_documents(trade: Trade) -> None:
    iid = produced(trade, "SO-13")
    trade.do(iid, "inspect_goods", "qc", **PASSED)
    trade.do(iid, "book_shipment", "docs", **BOOKED)
    trade.flow.add_user("both", ["documents_logistics", "risk_compliance"])
    trade.do(iid, "prepare_documents", "both", **PREPARED)
    with pytest.raises(SeparationOfDuty):
        trade.do(iid, "review_documents", "both", documents_ok=True)
    assert trade.open(iid) == ["review_documents"]


def surveyed(trade: Trade, key: str, complaint: bool) -> int:
    iid = trade.start("after_sales", key, by="ops")
    trade.do(iid, "satisfaction_survey", "ops", satisfaction="2" if complaint else "5",
             complaint=complaint)  # fmt: skip
    return iid


def test_a_satisfied_customer_ends_after_sales(trade: Trade) -> None:
    iid = surveyed(trade, "SO-14", complaint=False)
    assert trade.status(iid) == InstanceStatus.COMPLETED


@pytest.mark.parametrize(("amount", "approval"), [(800.0, False), (12_000.0, True)])
def test_a_complaint_is_investigated_resolved_and_large_compensation_approved(
    trade: Trade, amount: float, approval: bool
) -> None:
    iid = surveyed(trade, "SO-15", complaint=True)
    assert trade.open(iid) == ["investigate_complaint"]
    trade.do(iid, "investigate_complaint", "qc", root_cause="packing", findings="Crushed cartons")
    trade.do(iid, "resolve_complaint", "ops", resolution="refund", compensation_amount=amount)
    if approval:
        assert trade.open(iid) == ["approve_compensation"]
        trade.do(iid, "approve_compensation", "boss", compensation_approved=True)
    assert trade.status(iid) == InstanceStatus.COMPLETED

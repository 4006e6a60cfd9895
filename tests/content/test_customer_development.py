"""Customer development: screening, grading by the customer_grade table, key accounts and
the follow-up cadence of each grade."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from engine.storage import InstanceStatus
from tests.content.conftest import Trade

LEAD = {
    "company_name": "Hamburg Tools GmbH",
    "country": "DE",
    "contact_email": "einkauf@hamburg-tools.example",
    "potential": "high",
}


def screened(trade: Trade, key: str, **lead: Any) -> int:
    iid = trade.start("customer_development", key)
    assert trade.open(iid) == ["screen_lead"]
    trade.do(iid, "screen_lead", "sales", **{**LEAD, **lead})
    return iid


def test_an_unqualified_lead_ends_there(trade: Trade) -> None:
    iid = screened(
        trade, "L-1", annual_volume=0, margin_percent=0, credit_score=500, qualified=False
    )
    assert trade.status(iid) == InstanceStatus.COMPLETED
    assert "grade" not in trade.variables(iid)


@pytest.mark.parametrize(
    ("lead", "grade", "every"),
    [
        ({"annual_volume": 2_000_000, "margin_percent": 18, "credit_score": 760}, "A", "P7D"),
        ({"annual_volume": 2_000_000, "margin_percent": 5, "credit_score": 700}, "B", "P14D"),
        ({"annual_volume": 300_000, "margin_percent": 12, "credit_score": 640}, "B", "P14D"),
        ({"annual_volume": 10_000, "margin_percent": 30, "credit_score": 610}, "B", "P14D"),
        ({"annual_volume": 80_000, "margin_percent": 4, "credit_score": 580}, "C", "P30D"),
        ({"annual_volume": 5_000_000, "margin_percent": 30, "credit_score": 540}, "D", "P90D"),
    ],
)
def test_the_grade_table_decides(
    trade: Trade, lead: dict[str, Any], grade: str, every: str
) -> None:
    iid = screened(trade, "L-2", qualified=True, **lead)
    variables = trade.variables(iid)
    assert (variables["grade"], variables["follow_up_every"]) == (grade, every)
    expected = ["assign_key_account"] if grade == "A" else ["create_customer_record"]
    assert trade.open(iid) == expected


def test_a_key_account_is_followed_up_weekly_until_it_goes_dormant(trade: Trade) -> None:
    iid = screened(
        trade, "L-3", annual_volume=1_500_000, margin_percent=20, credit_score=720, qualified=True
    )
    trade.do(iid, "assign_key_account", "boss", account_manager="Li Wei", service_level="premium")
    trade.do(
        iid,
        "create_customer_record",
        "sales",
        customer_id="C-1001",
        contact_name="Anna Vogel",
        preferred_currency="EUR",
    )
    assert trade.open(iid) == []  # waiting for the first follow-up
    assert trade.wait(iid, days=6) == []
    assert trade.wait(iid, days=1, minutes=1) == ["follow_up_due"]
    assert trade.open(iid) == ["follow_up_customer"]
    trade.do(
        iid,
        "follow_up_customer",
        "sales",
        follow_up_channel="visit",
        follow_up_notes="Visited",
        keep_following=True,
    )
    assert trade.wait(iid, days=7, minutes=1) == ["follow_up_due"]  # and again a week later
    trade.do(
        iid,
        "follow_up_customer",
        "sales",
        follow_up_channel="call",
        follow_up_notes="No orders",
        keep_following=False,
    )
    assert trade.status(iid) == InstanceStatus.COMPLETED
    assert trade.fired(iid) == ["follow_up_due", "follow_up_due"]


def test_a_grade_d_account_waits_a_quarter(trade: Trade) -> None:
    iid = screened(
        trade,
        "L-4",
        annual_volume=1_000,
        margin_percent=5,
        credit_score=620,
        qualified=True,
        potential="low",
    )
    trade.do(
        iid,
        "create_customer_record",
        "sales",
        customer_id="C-1002",
        contact_name="Bo",
        preferred_currency="USD",
    )
    assert trade.wait(iid, days=89) == []
    assert trade.wait(iid, days=1, minutes=1) == ["follow_up_due"]


def test_a_key_account_is_followed_up_every_week_for_years(trade: Trade) -> None:
    """Each round adds four tasks to Spiff's task tree, and its iterator stops at depth
    1000: the follow-ups used to stop after round 248, without a word. The tree is
    compacted as each command settles (engine/execution/compaction.py): six years of weekly
    follow-ups later, the saved state is the size it was in the first weeks."""
    iid = screened(
        trade, "L-5", annual_volume=1_500_000, margin_percent=20, credit_score=720, qualified=True
    )
    trade.do(iid, "assign_key_account", "boss", account_manager="Li Wei", service_level="premium")
    trade.do(
        iid,
        "create_customer_record",
        "sales",
        customer_id="C-1005",
        contact_name="Anna Vogel",
        preferred_currency="EUR",
    )
    began = trade.clock.now()
    sizes = []
    for week in range(320):
        assert trade.wait(iid, days=7, minutes=1) == ["follow_up_due"], f"week {week}"
        trade.do(
            iid,
            "follow_up_customer",
            "sales",
            follow_up_channel="call",
            follow_up_notes="Called",
            keep_following=True,
        )
        sizes.append(len(trade.flow.instance(iid).state))
    assert trade.clock.now() - began > timedelta(days=6 * 365)
    assert max(sizes[-10:]) <= max(sizes[:10])
    assert trade.wait(iid, days=7, minutes=1) == ["follow_up_due"]
    trade.do(
        iid,
        "follow_up_customer",
        "sales",
        follow_up_channel="visit",
        follow_up_notes="No orders this year",
        keep_following=False,
    )
    assert trade.status(iid) == InstanceStatus.COMPLETED
    assert len(trade.fired(iid)) == 321
    assert trade.variables(iid)["follow_up_notes"] == "No orders this year"

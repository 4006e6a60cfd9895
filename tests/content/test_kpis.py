"""The department's KPIs, computed from a history run here through the shipped processes,
whose values are known in advance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from engine.clock import as_utc
from engine.reporting import analytics, facts, rollups
from engine.reporting.analytics import ElementQuery, Sample
from engine.storage import CaseFacts
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


def order(
    trade: Trade,
    key: str,
    *,
    paid_after_days: float,
    complaint: bool,
    score: str,
    promised_in_days: int = 30,
) -> int:
    """An order through every stage: sent 3 h after the inquiry, shipped 10 days after
    signing, due ``promised_in_days`` after the contract's draft,
    paid ``paid_after_days`` after shipping (or chased to bad debt)."""
    iid = trade.start("inquiry_to_collection", key)
    trade.wait(iid, hours=3)
    trade.do(iid, "prepare_quotation", "sales", **QUOTE)
    trade.do(iid, "send_quotation", "sales", **SEND)
    trade.send("quotation_accepted", key, by="sales")
    promised = (trade.clock.now() + timedelta(days=promised_in_days)).date().isoformat()
    trade.do(iid, "draft_contract", "ops", **{**DRAFT, "delivery_date": promised})
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
    history(trade)

    with trade.flow.db.reading() as session:
        kpis = analytics.kpis(session, analytics.ElementQuery(), trade.clock.now(), SHANGHAI)
    assert (kpis.quotation_turnaround_p50, kpis.quotation_turnaround_p90) == (3 * 3600,) * 2
    assert kpis.contract_to_shipped_p50 == kpis.contract_to_shipped_p90 == 10 * 86400
    # of 5 and 12 days (SO-3 was never paid); nearest rank: the lower of two
    assert (kpis.shipped_to_paid_p50, kpis.shipped_to_paid_p90) == (5 * 86400, 12 * 86400)
    assert (kpis.contract_to_paid_p50, kpis.contract_to_paid_p90) == (15 * 86400, 22 * 86400)
    # SO-2 shipped a day after its promised date; SO-3 on it at 18:00 UTC, which is the
    # next morning in Shanghai, where the dates were promised
    assert kpis.fulfilment_rate == 1 / 3
    with trade.flow.db.reading() as session:
        in_utc = analytics.kpis(session, analytics.ElementQuery(), trade.clock.now())
    assert in_utc.fulfilment_rate == 2 / 3
    assert kpis.overdue_collection_rate == 1 / 3 and kpis.bad_debt_rate == 1 / 3
    assert kpis.complaint_rate == 1 / 3 and kpis.satisfaction_mean == (5 + 2 + 4) / 3
    assert kpis.new_customers_by_grade == {"A": 1}
    assert kpis.document_first_pass_rate == 1.0


SHANGHAI = ZoneInfo("Asia/Shanghai")


def history(trade: Trade) -> None:
    """Three grade-B orders taken by sales (SO-3 ends in bad debt) and a grade-A lead."""
    order(trade, "SO-1", paid_after_days=5, complaint=False, score="5", promised_in_days=12)
    order(trade, "SO-2", paid_after_days=12, complaint=True, score="2", promised_in_days=9)
    order(trade, "SO-3", paid_after_days=40, complaint=False, score="4", promised_in_days=10)
    screened(trade, "L-1", annual_volume=2_000_000, margin_percent=18, credit_score=760,
             qualified=True)  # fmt: skip  # grade A: a key account first
    lead = trade.flow.tasks_of(trade.flow.inbox("boss").tasks[0].instance_id)
    trade.do(lead[-1].instance_id, "assign_key_account", "boss", account_manager="Li",
             service_level="premium")  # fmt: skip
    trade.do(lead[-1].instance_id, "create_customer_record", "sales", customer_id="C-1001",
             contact_name="Anna", preferred_currency="EUR")  # fmt: skip


def test_slices_by_grade_user_and_period(trade: Trade) -> None:
    history(trade)
    end = trade.clock.now()

    def kpis(**query: object) -> analytics.Kpis:
        with trade.flow.db.reading() as session:
            return analytics.kpis(session, ElementQuery(**query), end, SHANGHAI)  # type: ignore[arg-type]

    everything = kpis()
    by_b, by_a = kpis(grade="B"), kpis(grade="A")
    assert by_b.shipped_to_paid_p50 == everything.shipped_to_paid_p50 == 5 * 86400
    assert by_b.new_customers_by_grade == {} and by_a.new_customers_by_grade == {"A": 1}
    assert by_a.shipped_to_paid_p50 is None and by_a.bad_debt_rate is None
    # the boss assigned the key account; the orders were sales's
    assert kpis(user="sales").bad_debt_rate == 1 / 3
    assert kpis(user="ops").bad_debt_rate is None
    # tasks: ops did 3 orders x (draft, sign, coordinate, survey) and SO-2's complaint;
    # each coordination waited the 10 days before production, past its limit
    assert kpis(user="ops").workload == {"order_execution": {"open": 0, "completed": 13,
                                                             "overdue": 3}}  # fmt: skip
    assert set(kpis(definition="customer_development").workload) == {
        "manager", "market_development"}  # fmt: skip
    # a period takes the spans that closed in it: SO-1 began at 09:00, its quotation was
    # sent at 12:00; between 10:00 and 13:00 its 3 h count, though it began before
    day = datetime(2026, 11, 27, tzinfo=UTC)
    after_start = kpis(since=day + timedelta(hours=10), until=day + timedelta(hours=13))
    assert after_start.quotation_turnaround_p50 == 3 * 3600
    # a period after everything: no measure closes in it
    later = kpis(since=end + timedelta(seconds=1))
    assert later.shipped_to_paid_p50 is None and later.workload == {}
    assert later.new_customers_by_grade == {} and later.on_time_rate is None


def test_the_instances_behind_each_figure(trade: Trade) -> None:
    history(trade)
    with trade.flow.db.reading() as session:

        def behind(measure: str) -> list[tuple[str | None, object]]:
            found = analytics.behind(session, measure, ElementQuery(), SHANGHAI)
            return [(s.business_key, s.value) for s in found]

        assert behind("shipped_to_paid") == [("SO-1", 5 * 86400), ("SO-2", 12 * 86400)]
        assert behind("bad_debt_rate") == [("SO-1", False), ("SO-2", False), ("SO-3", True)]
        assert behind("fulfilment_rate") == [("SO-1", True), ("SO-2", False), ("SO-3", False)]
        assert behind("new_customers_by_grade") == [("L-1", "A")]
        late = analytics.behind_element(session, "send_payment_reminder", ElementQuery(),
                                        trade.clock.now())  # fmt: skip
        assert [(s.business_key, s.value) for s in late] == [("SO-3", 0)]
        assert all(isinstance(s, Sample) for s in late)


def test_the_facts_kept_step_by_step_equal_a_replay_of_the_trail(trade: Trade) -> None:
    history(trade)
    with trade.flow.db.transaction() as session:
        kept = case_facts(session.connection())
        assert facts.rebuild(session.connection()) == len(kept) == 4
        assert case_facts(session.connection()) == kept
        assert {row["business_key"]: row["grade"] for row in kept.values()} == {
            "SO-1": "B", "SO-2": "B", "SO-3": "B", "L-1": "A"}  # fmt: skip


def test_daily_summaries_answer_as_the_task_rows_do(trade: Trade) -> None:
    """Summing the past weeks changes no figure, whatever the slice: whole weeks come from
    the summaries, the days after them and partial weeks at a period's edges from rows."""
    history(trade)
    end = trade.clock.now()
    start = datetime(2026, 11, 27, 9, tzinfo=UTC)
    slices = [
        ElementQuery(),
        ElementQuery(since=start + timedelta(days=3, hours=5)),  # mid-week edges
        ElementQuery(since=datetime(2026, 12, 7, tzinfo=UTC)),  # a Monday: a whole week
        ElementQuery(since=start + timedelta(days=10), until=start + timedelta(days=40, hours=7)),
        ElementQuery(until=start + timedelta(days=20)),
        ElementQuery(role="finance"),
        ElementQuery(user="ops", definition="inquiry_to_collection"),
        ElementQuery(grade="A"),
    ]

    def answers() -> list[object]:
        with trade.flow.db.reading() as session:
            return [
                (analytics.elements(session, q, end), analytics.kpis(session, q, end, SHANGHAI))
                for q in slices
            ]

    from_rows = answers()
    assert from_rows[0][0] and from_rows[1][0] and from_rows[4][1].workload  # not all empty
    with trade.flow.db.transaction() as session:
        summed = rollups.roll_up(session.connection(), end)
    with trade.flow.db.reading() as session:
        until = rollups.summed_until(session.connection())
    # every week but the last, whose tasks may still end, is summed
    assert summed > 40 and until == rollups.monday(end.date())
    assert answers() == from_rows
    with trade.flow.db.transaction() as session:  # again: nothing more to sum
        assert rollups.roll_up(session.connection(), end) == 0


def test_the_upgrade_that_adds_the_summaries_replays_an_existing_history(trade: Trade) -> None:
    """Migration 0005 on a database that already has a history: the case facts replayed
    from its trail equal those kept step by step, and the figures do not change."""
    from alembic import command

    from engine.storage import upgrade
    from engine.storage.schema import alembic_config

    history(trade)
    end, db = trade.clock.now(), trade.flow.db
    with db.reading() as session:
        kept = case_facts(session.connection())
        before = analytics.kpis(session, ElementQuery(), end, SHANGHAI)
    with db.engine.begin() as conn:
        cfg = alembic_config(db)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
    upgrade(db)
    with db.reading() as session:
        assert case_facts(session.connection()) == kept
        assert analytics.kpis(session, ElementQuery(), end, SHANGHAI) == before


def case_facts(conn: Connection) -> dict[int, dict[str, Any]]:
    """Every case_facts row as a dict (times in UTC), to compare two ways of keeping them."""
    found: dict[int, dict[str, Any]] = {}
    for row in conn.execute(select(CaseFacts)).mappings():
        found[row["instance_id"]] = {
            k: as_utc(v) if isinstance(v, datetime) else v for k, v in row.items()
        }
    return found

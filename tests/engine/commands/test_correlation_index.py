"""Correlation by values through the index of waiting instances' keys: the rows follow
the instance's variables while it waits, a message finds its instance without loading
waiting workflows, and equal means one thing on both sides."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from engine.errors import MessageInvalid, MessageUndeliverable
from engine.execution import StateSerializer, correlation_key, correlation_keys
from engine.storage import Database, SubscriptionKey, upgrade
from engine.tradeflow import Tradeflow
from tests.engine.conftest import Scenario


def keys_of(flow: Tradeflow, instance_id: int) -> dict[str, str]:
    with flow.db.reading() as session:
        rows = session.scalars(
            select(SubscriptionKey).where(SubscriptionKey.instance_id == instance_id)
        ).all()
    return {r.name: r.value for r in rows}


def invoiced(scenario: Scenario, key: str, amount: Any, currency: str = "USD") -> int:
    iid = scenario.flow.start("payment_collection", actor="cashier", business_key=key)
    scenario.complete(iid, "issue_invoice", by="cashier", invoice_amount=amount, currency=currency)
    return iid


def test_numbers_compare_by_value_and_booleans_are_not_numbers() -> None:
    assert correlation_key(1) == correlation_key(1.0) == correlation_key(Decimal("1.00"))
    assert correlation_key(0.1) == correlation_key(Decimal("0.1")) == "n:0.1"
    assert correlation_key(0) == correlation_key(-0.0) == correlation_key(Decimal("-0E+3"))
    assert correlation_key(100) == "n:100"  # not 1E+2
    assert correlation_key(True) == "b:true" != correlation_key(1)
    assert correlation_key("1") != correlation_key(1)
    assert correlation_key(float("nan")) is None and correlation_key(float("inf")) is None
    assert correlation_key([1]) is None and correlation_key({"a": 1}) is None
    assert correlation_key(None) is None


def test_long_and_odd_strings_are_hashed_alike() -> None:
    long = "SO-" + "9" * 400
    assert correlation_key(long) == correlation_key("SO-" + "9" * 400)
    assert correlation_key(long) != correlation_key(long + "0")
    assert len(correlation_key(long) or "") == 66
    assert (correlation_key("a\x00b") or "").startswith("h:")
    assert (correlation_key("a\udc80") or "").startswith("h:")
    assert correlation_keys({"x" * 256: "too long a name", "items": [1], "n": 2}) == {"n": "n:2"}


def test_a_waiting_instance_has_its_keys_and_loses_them_when_it_stops_waiting(
    scenario: Scenario,
) -> None:
    flow = scenario.flow
    iid = invoiced(scenario, "SO-40", Decimal("1250.50"), "EUR")
    keys = keys_of(flow, iid)
    assert keys["invoice_amount"] == "n:1250.5" and keys["currency"] == "s:EUR"
    flow.correlate(
        "payment_received",
        actor="bank",
        correlation={"currency": "EUR", "invoice_amount": 1250.5},
        variables={"amount_received": 1250.5},
    )
    assert keys_of(flow, iid) == {}  # it waits for nothing now


def test_a_message_by_values_loads_only_the_instance_it_goes_to(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With many instances waiting, the instance is found by the index: the one
    workflow loaded is the target's, in its own command."""
    flow = scenario.flow
    ids = [invoiced(scenario, f"SO-5{n}", 100 + n) for n in range(6)]
    flow.runtime.live.clear()  # every load would read and deserialise a state
    loaded: list[int] = []
    real = StateSerializer.loads

    def loads(self: StateSerializer, text: str, specs: Any, parts: Any = None) -> Any:
        loaded.append(len(text))
        return real(self, text, specs, parts)

    monkeypatch.setattr(StateSerializer, "loads", loads)
    result = flow.correlate(
        "payment_received",
        actor="bank",
        correlation={"invoice_amount": 103, "currency": "USD"},
        variables={"amount_received": 103},
    )
    assert result.instance_id == ids[3]
    assert len(loaded) == 1
    assert scenario.open_elements(ids[2]) == []  # the others still wait


def test_a_variable_changed_while_waiting_moves_its_key(scenario: Scenario) -> None:
    """The keys are what the committed state says: an instance woken by its payment
    reminder (a timer) keeps waiting, and its keys stay as its variables are."""
    flow = scenario.flow
    iid = invoiced(scenario, "SO-60", 500)
    before = keys_of(flow, iid)
    with flow.db.transaction() as session:  # what an old row would say
        session.execute(
            SubscriptionKey.__table__.update()  # type: ignore[attr-defined]
            .where(SubscriptionKey.instance_id == iid, SubscriptionKey.name == "currency")
            .values(value="s:GBP")
        )
    with pytest.raises(MessageUndeliverable, match="no longer matches"):
        flow.correlate(
            "payment_received",
            actor="bank",
            correlation={"currency": "GBP"},
            variables={"amount_received": 500},
        )
    assert scenario.open_elements(iid) == []  # nothing changed: still waiting
    flow.runtime.live.clear()
    flow.wake(iid)  # any command that saves it writes its keys as they are
    assert keys_of(flow, iid) == before


@pytest.mark.parametrize(
    "value", [[1, 2], {"a": 1}, float("inf")], ids=["list", "object", "infinity"]
)
def test_values_correlation_cannot_compare_are_refused(scenario: Scenario, value: Any) -> None:
    iid = invoiced(scenario, "SO-70", 10)
    with pytest.raises(MessageInvalid, match="can't be compared: currency") as refused:
        scenario.flow.correlate(
            "payment_received",
            actor="bank",
            correlation={"currency": value},
            variables={"amount_received": 10},
        )
    assert "currency" in refused.value.details["errors"]["correlation"]
    assert scenario.open_elements(iid) == []


def test_a_boolean_does_not_match_a_number(scenario: Scenario) -> None:
    iid = invoiced(scenario, "SO-80", 1)
    result = scenario.flow.correlate(
        "payment_received",
        actor="bank",
        correlation={"invoice_amount": True},
        variables={"amount_received": 1},
    )
    assert result.buffered and result.instance_id is None  # kept: it may come to match
    assert scenario.open_elements(iid) == []  # still waiting for its own payment


def test_the_migration_indexes_the_instances_waiting_before_it(
    db: Database, flow: Tradeflow, scenario: Scenario
) -> None:
    from alembic import command

    from engine.storage.schema import alembic_config

    iid = invoiced(scenario, "SO-90", 75, "CNY")
    before = keys_of(flow, iid)
    assert before["currency"] == "s:CNY"
    with db.engine.begin() as conn:
        cfg = alembic_config(db)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")
    upgrade(db)
    assert keys_of(flow, iid) == before

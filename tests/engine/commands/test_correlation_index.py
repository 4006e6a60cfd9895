"""Correlation by values through the index of waiting instances' keys: the rows follow
the instance's variables while it waits, a message finds its instance without loading
waiting workflows, and equal means one thing on both sides."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from engine.errors import MessageInvalid
from engine.execution import StateSerializer, correlation_key, correlation_keys
from engine.storage import Database, InstanceStatus, SubscriptionKey, upgrade
from engine.tradeflow import Tradeflow
from tests.diagrams import diagram, message, seq, user
from tests.diagrams import messages as declared
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
    assert correlation_key(0.1) == correlation_key(Decimal("0.10")) == "n:1e-1"
    assert correlation_key(0) == correlation_key(-0.0) == correlation_key(Decimal("-0E+3"))
    assert correlation_key(100) == correlation_key(Decimal("1E+2")) != correlation_key(1)
    # exactly: no rounding to Decimal's 28 digits
    assert correlation_key(10**30) == correlation_key(Decimal(10**30))
    assert correlation_key(10**30 + 1) != correlation_key(10**30)
    assert correlation_key(Decimal("1E+1000000")) == "n:1e1000000"  # no overflow
    assert correlation_key(10**5000) is None  # past what Python writes as text
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
    assert correlation_keys({"x" * 256: "too long a name", "items": [1], "n": 2}) == {"n": "n:2e0"}


def test_a_waiting_instance_has_its_keys_and_loses_them_when_it_stops_waiting(
    scenario: Scenario,
) -> None:
    flow = scenario.flow
    iid = invoiced(scenario, "SO-40", Decimal("1250.50"), "EUR")
    keys = keys_of(flow, iid)
    assert keys["invoice_amount"] == "n:12505e-1" and keys["currency"] == "s:EUR"
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
    # the flow's live cache is off (conftest): any load reads and deserialises a state
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


ROUNDS = diagram(
    "edit_then_wait",
    '<bpmn:startEvent id="s"/>' + user("edit")
    + '<bpmn:intermediateCatchEvent id="ping">' + message("ping", "more")
    + '</bpmn:intermediateCatchEvent><bpmn:exclusiveGateway id="g" default="g_to_e"/>'
    + '<bpmn:endEvent id="e"/>'
    + seq("s", "edit") + seq("edit", "ping") + seq("ping", "g") + seq("g", "edit", "more")
    + seq("g", "e"),
    declared("ping"),
)  # fmt: skip


def ping(flow: Tradeflow, ref: str, more: bool) -> Any:
    return flow.correlate("ping", actor="bank", correlation={"ref": ref}, variables={"more": more})


def test_the_keys_follow_the_variables_at_every_save(scenario: Scenario) -> None:
    """The keys are the instance's variables as its page shows them, written at each
    save: a message by the value it held in an earlier round is kept, not delivered."""
    flow = scenario.flow
    flow.deploy([ROUNDS], actor="owner")
    iid = flow.start("edit_then_wait", actor="cashier")
    scenario.complete(iid, "edit", by="cashier", ref="A")
    assert keys_of(flow, iid) == correlation_keys(flow.variables(iid))
    assert keys_of(flow, iid)["ref"] == "s:A"
    assert ping(flow, "A", True).instance_id == iid
    scenario.complete(iid, "edit", by="cashier", ref="B")  # waits again, by another ref
    assert keys_of(flow, iid)["ref"] == "s:B"
    assert ping(flow, "A", False).buffered  # kept: no instance holds A now
    assert ping(flow, "B", False).instance_id == iid
    assert flow.instance(iid).status == InstanceStatus.COMPLETED
    assert keys_of(flow, iid) == {}


def test_a_key_out_of_step_keeps_the_message_and_is_mended(scenario: Scenario) -> None:
    """Found by a key its variables no longer hold (a command beside the lookup changed
    them): checked once locked, the message is kept, not refused, and the key mended."""
    flow = scenario.flow
    iid = invoiced(scenario, "SO-60", 500)
    before = keys_of(flow, iid)
    with flow.db.transaction() as session:  # as a row read before a change committed
        session.execute(
            SubscriptionKey.__table__.update()  # type: ignore[attr-defined]
            .where(SubscriptionKey.instance_id == iid, SubscriptionKey.name == "currency")
            .values(value="s:GBP")
        )
    result = flow.correlate(
        "payment_received",
        actor="bank",
        correlation={"currency": "GBP"},
        variables={"amount_received": 500},
    )
    assert result.buffered and result.instance_id is None
    assert scenario.open_elements(iid) == []  # still waiting
    assert keys_of(flow, iid) == before


def test_an_instance_that_ends_or_is_cancelled_loses_its_keys(scenario: Scenario) -> None:
    flow = scenario.flow
    iid = invoiced(scenario, "SO-61", 500)
    assert keys_of(flow, iid)
    flow.cancel(iid, actor="owner", reason="test")
    assert keys_of(flow, iid) == {}


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

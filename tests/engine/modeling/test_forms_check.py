"""Limits on what one submission may carry: size and nesting of variables, whichever way
they come in (a task's data, a start's variables, a message's variables)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from engine.errors import FormInvalid, MessageInvalid
from engine.modeling.forms_check import MAX_DATA_BYTES, MAX_DATA_DEPTH
from engine.storage import AuditEvent, Instance
from engine.tradeflow import Tradeflow
from tests.engine.conftest import Scenario


def nested(levels: int) -> dict[str, Any]:
    top: dict[str, Any] = {}
    inner = top
    for _ in range(levels):
        inner["x"] = {}
        inner = inner["x"]
    return top


def counts(flow: Tradeflow) -> tuple[int, int]:
    with flow.db.reading() as session:
        return (
            session.scalar(select(func.count()).select_from(Instance)) or 0,
            session.scalar(select(func.count()).select_from(AuditEvent)) or 0,
        )


BIG = {"note": "x" * MAX_DATA_BYTES}
DEEP = {"tree": nested(MAX_DATA_DEPTH + 1)}


@pytest.mark.parametrize(("variables", "words"), [(BIG, "bytes as JSON"), (DEEP, "nested")])
def test_a_start_with_too_much_data_is_refused(
    scenario: Scenario, variables: dict[str, Any], words: str
) -> None:
    before = counts(scenario.flow)
    with pytest.raises(FormInvalid, match=words):
        scenario.flow.start("document_review", actor="clerk", variables=variables)
    assert counts(scenario.flow) == before


def test_just_under_the_limits_is_fine(scenario: Scenario) -> None:
    variables = {"tree": nested(MAX_DATA_DEPTH - 1), "note": "x" * (MAX_DATA_BYTES - 1000)}
    iid = scenario.flow.start("document_review", actor="clerk", variables=variables)
    assert scenario.flow.variables(iid)["note"] == variables["note"]


def test_a_message_with_too_much_data_is_refused(scenario: Scenario) -> None:
    flow = scenario.flow
    iid = flow.start("payment_collection", actor="cashier", business_key="SO-1")
    scenario.complete(iid, "issue_invoice", by="cashier", invoice_amount=10.0, currency="USD")
    before = counts(flow)
    with pytest.raises(MessageInvalid, match="bytes as JSON"):
        flow.correlate("payment_received", actor="bank", business_key="SO-1", variables=BIG)
    assert counts(flow) == before


def test_a_task_completed_with_too_much_data_is_refused(scenario: Scenario) -> None:
    flow = scenario.flow
    iid = flow.start("document_review", actor="clerk")
    task = scenario.open_task(iid, "prepare_documents")
    before = counts(flow)
    with pytest.raises(FormInvalid, match="nested"):
        flow.complete(task.id, actor="clerk", data=DEEP)
    assert counts(flow) == before

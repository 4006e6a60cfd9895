"""The live-workflow cache: faster, and never a different answer."""

from __future__ import annotations

import pytest

from engine.errors import ProcessFailed
from engine.runtime import LiveWorkflows
from engine.storage import Instance
from engine.tradeflow import Tradeflow
from tests.engine.conftest import Scenario, undecidable_review


@pytest.fixture
def cached(scenario: Scenario) -> Scenario:
    scenario.flow.runtime.live = LiveWorkflows()
    return scenario


def test_a_scenario_runs_the_same_with_the_cache_on(cached: Scenario) -> None:
    flow = cached.flow
    iid = flow.start("order_fulfilment", actor="sales", business_key="SO-1")
    assert flow.runtime.live.take(iid, flow.instance(iid).revision) is not None
    flow.runtime.live.clear()
    cached.complete(iid, "confirm_order", by="sales")
    cached.complete(iid, "prepare_documents", by="clerk", invoice_number="INV-1")
    cached.complete(iid, "review_documents", by="checker", documents_ok=True)
    cached.complete(iid, "issue_invoice", by="cashier", invoice_amount=5.0, currency="EUR")
    flow.correlate(
        "payment_received", actor="bank", business_key="SO-1", variables={"amount_received": 5.0}
    )
    cached.complete(iid, "write_off", by="cashier", fx_rate=7.8)
    assert flow.instance(iid).status == "completed"
    assert flow.verify(f"instance:{iid}").ok


def test_a_second_process_sees_every_change_of_the_first(cached: Scenario) -> None:
    """Two Tradeflows on one database, as two API processes: neither acts on stale state."""
    first = cached
    second = Scenario(Tradeflow(first.flow.db, first.flow.clock))
    iid = first.flow.start("document_review", actor="clerk")
    first.complete(iid, "prepare_documents", by="clerk", invoice_number="INV-1")
    second.complete(iid, "review_documents", by="checker", documents_ok=False)
    # the first process still caches the workflow as it left it; the row has moved on
    first.complete(iid, "prepare_documents", by="clerk", invoice_number="INV-2")
    second.complete(iid, "review_documents", by="checker", documents_ok=True)
    assert first.flow.instance(iid).status == "completed"
    assert first.flow.variables(iid)["invoice_number"] == "INV-2"


def test_a_failed_command_leaves_nothing_in_the_cache(cached: Scenario) -> None:
    flow = cached.flow
    undecidable_review(flow)
    iid = flow.start("document_review", actor="clerk")
    cached.complete(iid, "prepare_documents", by="clerk", invoice_number="INV-1")
    task = cached.open_task(iid, "review_documents")
    with pytest.raises(ProcessFailed):
        flow.complete(task.id, actor="checker", data={"review_comment": "no verdict"})
    assert "review_comment" not in flow.variables(iid)  # the failed data left no trace
    # the live copy was dropped: the next command restores the saved state and fails alike
    with pytest.raises(ProcessFailed):
        flow.complete(task.id, actor="checker", data={"review_comment": "again"})
    assert "review_comment" not in flow.variables(iid)


def test_saved_state_is_exactly_the_live_workflow(cached: Scenario) -> None:
    """Completed tasks' dicts are reused between saves: they must never go stale."""
    import json

    from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
    from SpiffWorkflow.camunda.serializer import DEFAULT_CONFIG

    flow = cached.flow
    plain = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(DEFAULT_CONFIG))

    def check(iid: int) -> None:
        instance = flow.instance(iid)
        live = flow.runtime.live.take(iid, instance.revision)
        assert live is not None
        stored = json.loads(instance.state)
        fresh = json.loads(plain.serialize_json(live))
        for key in ("spec", "subprocess_specs"):  # ours stores the spec by reference
            del fresh[key]
        assert stored == fresh
        flow.runtime.live.keep(instance, live)  # type: ignore[arg-type]  # put it back

    iid = flow.start("order_fulfilment", actor="sales", business_key="SO-7")
    check(iid)
    cached.complete(iid, "confirm_order", by="sales")
    check(iid)
    for verdict in (False, False, True):
        cached.complete(iid, "prepare_documents", by="clerk", invoice_number="INV")
        check(iid)
        cached.complete(iid, "review_documents", by="checker", documents_ok=verdict)
        check(iid)
    cached.complete(iid, "issue_invoice", by="cashier", invoice_amount=5.0, currency="EUR")
    check(iid)
    flow.correlate(
        "payment_received", actor="bank", business_key="SO-7", variables={"amount_received": 1.0}
    )
    check(iid)
    cached.complete(iid, "chase_payment", by="checker")
    assert flow.instance(iid).status == "completed"


def test_the_cache_is_bounded_by_the_size_of_what_it_holds(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bounded by its workflows' saved state in bytes, not only by their number: a few
    long-lived instances with big histories can't take the worker's memory. One bigger
    than the whole bound is not kept; an ended one leaves."""
    flow = scenario.flow
    first = flow.start("document_review", actor="clerk")
    one = len(_state(flow, first))
    live = flow.runtime.live = LiveWorkflows(size=100, max_bytes=int(one * 2.5))
    ids = [flow.start("document_review", actor="clerk") for _ in range(4)]
    count, held = live.held
    assert count == 2 and held <= live.max_bytes  # the two newest, by their bytes
    assert [live.holds(i, flow.instance(i).revision) for i in ids] == [False, False, True, True]
    scenario.complete(ids[-1], "prepare_documents", by="clerk", invoice_number="INV-1")
    scenario.complete(ids[-1], "review_documents", by="checker", documents_ok=True)
    assert live.held[0] == 1 and not live.holds(ids[-1], flow.instance(ids[-1]).revision)
    flow.runtime.live = LiveWorkflows(size=100, max_bytes=one // 2)
    flow.start("document_review", actor="clerk")
    assert flow.runtime.live.held == (0, 0)  # bigger than the bound: not kept
    monkeypatch.setenv("TRADEFLOW_LIVE_CACHE_MB", "1.5")
    assert LiveWorkflows().max_bytes == 1572864
    monkeypatch.setenv("TRADEFLOW_LIVE_CACHE_MB", "lots")
    with pytest.raises(ValueError, match="TRADEFLOW_LIVE_CACHE_MB"):
        LiveWorkflows()


def _state(flow: Tradeflow, instance_id: int) -> str:
    with flow.db.reading() as session:
        return str(session.get_one(Instance, instance_id).state)

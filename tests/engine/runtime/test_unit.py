"""The unit of work: one transaction per command, all or nothing, one winner per race."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import func, select

from engine.commands import InstanceQuery, reading
from engine.errors import (
    Conflict,
    FormInvalid,
    InstanceNotRunning,
    ProcessFailed,
    TaskNotOpen,
)
from engine.execution import SAFE_ENGINE
from engine.storage import AuditEvent, HumanTask, Instance, TaskState
from engine.tradeflow import Tradeflow
from tests.engine.conftest import Scenario, undecidable_review


def _snapshot(flow: Tradeflow, iid: int) -> tuple[str, list[tuple[int, str, str | None]], int]:
    """Everything a command could touch: state JSON, task rows, audit rows."""
    with flow.db.reading() as session:
        state = session.get_one(Instance, iid).state
        tasks = [
            (t.id, t.state.value, t.assignee)
            for t in session.scalars(select(HumanTask).order_by(HumanTask.id))
        ]
        events = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
    return state, tasks, events


def test_start_passes_variables_and_business_key(scenario: Scenario) -> None:
    flow = scenario.flow
    iid = flow.start(
        "credit_check",
        actor="sales",
        business_key="CUST-7",
        variables={"annual_volume": 50_000, "credit_score": 800},
    )
    instance = flow.instance(iid)
    assert (instance.business_key, instance.status, instance.started_by) == (
        "CUST-7",
        "running",
        "sales",
    )
    assert flow.variables(iid)["grade"] == "C"
    started = flow.history(iid)[0]
    assert started.kind == "instance_started"
    assert started.data["variables"] == {"annual_volume": 50_000, "credit_score": 800}


def test_state_is_stored_without_the_spec(scenario: Scenario) -> None:
    iid = scenario.flow.start("document_review", actor="clerk")
    state = json.loads(scenario.flow.instance(iid).state)
    assert "spec" not in state and "subprocess_specs" not in state
    assert "task_specs" not in json.dumps(state)


def test_a_fresh_process_restores_mid_scenario(scenario: Scenario) -> None:
    """Save, then restore in a new Tradeflow (empty spec cache) and carry on."""
    iid = scenario.flow.start("order_fulfilment", actor="sales", business_key="SO-5")
    scenario.complete(iid, "confirm_order", by="sales")
    scenario.complete(iid, "prepare_documents", by="clerk", invoice_number="INV-5")

    restored = Scenario(Tradeflow(scenario.flow.db, scenario.flow.clock))
    with restored.flow.db.reading() as session:
        workflow = restored.flow.runtime.load(session, session.get_one(Instance, iid))
    assert workflow.script_engine is SAFE_ENGINE  # attached on every load
    restored.complete(iid, "review_documents", by="checker", documents_ok=True)
    assert restored.open_elements(iid) == ["issue_invoice"]
    assert restored.flow.variables(iid)["invoice_number"] == "INV-5"


def test_a_failing_condition_rolls_everything_back(scenario: Scenario) -> None:
    flow = scenario.flow
    undecidable_review(flow)
    iid = flow.start("document_review", actor="clerk")
    scenario.complete(iid, "prepare_documents", by="clerk", invoice_number="INV-1")
    before = _snapshot(flow, iid)
    task = scenario.open_task(iid, "review_documents")
    with pytest.raises(ProcessFailed, match="verdict"):
        flow.complete(task.id, actor="checker", data={"review_comment": "looks fine"})
    assert _snapshot(flow, iid) == before  # not even the implicit claim remains


def test_a_failing_start_leaves_no_instance(scenario: Scenario) -> None:
    flow = scenario.flow
    with pytest.raises(ProcessFailed, match="annual_volume"):
        flow.start("credit_check", actor="sales", variables={"credit_score": 1})
    with flow.db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Instance)) == 0


def test_a_submission_that_does_not_fit_the_form_changes_nothing(scenario: Scenario) -> None:
    flow = scenario.flow
    iid = flow.start("document_review", actor="clerk")
    before = _snapshot(flow, iid)
    task = scenario.open_task(iid, "prepare_documents")
    for bad in (
        {},
        {"invoice_number": 7},
        {"invoice_number": "A", "surprise": 1},
        {"__class__": "x"},
    ):
        with pytest.raises(FormInvalid):
            flow.complete(task.id, actor="clerk", data=bad)
    assert _snapshot(flow, iid) == before


def test_bad_variable_names_are_refused_at_start(scenario: Scenario) -> None:
    with pytest.raises(FormInvalid):
        scenario.flow.start("document_review", actor="clerk", variables={"not a name": 1})


def test_cancel_closes_the_instance_and_its_tasks(scenario: Scenario) -> None:
    flow = scenario.flow
    iid = flow.start("document_review", actor="clerk")
    task = scenario.open_task(iid, "prepare_documents")
    flow.cancel(iid, actor="boss", reason="customer withdrew")
    assert flow.instance(iid).status == "cancelled"
    assert [t.state for t in flow.tasks_of(iid)] == [TaskState.CANCELLED]
    assert scenario.kinds(iid)[-2:] == ["task_cancelled", "instance_cancelled"]
    assert flow.inbox("clerk").total == 0
    with pytest.raises(Conflict):
        flow.complete(task.id, actor="clerk", data={"invoice_number": "X"})
    with pytest.raises(InstanceNotRunning):
        flow.cancel(iid, actor="boss")


def test_two_threads_completing_one_task_succeed_once(scenario: Scenario) -> None:
    flow = scenario.flow
    flow.add_user("checker2", ["risk_compliance"])
    for attempt in range(3):
        iid = flow.start("document_review", actor="clerk", business_key=f"RACE-{attempt}")
        scenario.complete(iid, "prepare_documents", by="clerk", invoice_number="INV")
        task = scenario.open_task(iid, "review_documents")
        barrier = threading.Barrier(2)
        outcomes: dict[str, str] = {}

        def attempt_completion(
            user: str,
            task_id: int = task.id,
            barrier: threading.Barrier = barrier,
            outcomes: dict[str, str] = outcomes,
        ) -> None:
            barrier.wait()
            try:
                flow.complete(task_id, actor=user, data={"documents_ok": True})
                outcomes[user] = "done"
            except Conflict as exc:
                outcomes[user] = type(exc).__name__

        threads = [
            threading.Thread(target=attempt_completion, args=(u,)) for u in ("checker", "checker2")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        results = sorted(outcomes.values(), key=lambda r: r != "done")
        assert len(results) == 2 and results[0] == "done", outcomes
        assert results[1] in ("TaskNotOpen", "TaskAlreadyClaimed"), outcomes
        kinds = scenario.kinds(iid)
        assert kinds.count("task_completed") == 2  # prepare + one review
        assert kinds.count("instance_completed") == 1
        assert flow.verify(f"instance:{iid}").ok


def test_a_failed_instance_is_recorded_and_stops(scenario: Scenario) -> None:
    from engine.commands.instances import fail

    flow = scenario.flow
    iid = flow.start("document_review", actor="clerk")
    task = scenario.open_task(iid, "prepare_documents")
    fail(flow.runtime, iid, "timer could not be evaluated")
    instance = flow.instance(iid)
    assert (instance.status, instance.error) == ("failed", "timer could not be evaluated")
    event = flow.history(iid)[-1]
    assert (event.kind, event.actor, event.data) == (
        "instance_failed",
        "system",
        {"error": "timer could not be evaluated"},
    )
    assert flow.verify(f"instance:{iid}").ok
    with pytest.raises(TaskNotOpen):  # its open tasks were cancelled with it
        flow.complete(task.id, actor="clerk", data={"invoice_number": "X"})


def test_a_customer_is_found_in_the_saved_state_however_it_was_written(
    scenario: Scenario,
) -> None:
    """The audit search's "customer": a name in the order's data, whether the state's
    JSON holds it as it is (orjson writes UTF-8) or escaped (json.dumps wrote \\uXXXX)."""
    flow = scenario.flow
    names = {"上海贸易有限公司": "SO-CN", 'Müller & Söhne "GmbH"': "SO-DE", "Lyon SA": "SO-FR"}
    started = {
        key: flow.start(
            "document_review", actor="clerk", business_key=key, variables={"customer_name": name}
        )
        for name, key in names.items()
    }
    iid = started["SO-CN"]
    scenario.complete(iid, "prepare_documents", by="clerk", invoice_number="INV-1")
    with flow.db.transaction() as session:  # one saved the older way: every non-ASCII escaped
        instance = session.get_one(Instance, started["SO-DE"])
        instance.state = json.dumps(json.loads(instance.state))

    def found(text: str) -> list[str | None]:
        with flow.db.reading() as session:
            rows, _ = reading.search(session, InstanceQuery(data_contains=text))
        return [row.business_key for row in rows]

    assert found("上海贸易") == ["SO-CN"]
    assert found('Söhne "GmbH') == ["SO-DE"]
    assert found("Lyon") == ["SO-FR"]
    assert found("Tokyo") == []


def test_the_view_of_an_instance_is_what_its_page_shows(scenario: Scenario) -> None:
    """Done, active and overdue elements for the diagram, variables, open tasks and the
    trail, from the engine: pages deserialise no workflow themselves."""
    flow = scenario.flow
    iid = flow.start("document_review", actor="clerk", variables={"order_id": "SO-7"})
    scenario.complete(iid, "prepare_documents", by="clerk", invoice_number="INV-7")
    view = flow.view(iid)
    assert "prepare_documents" in view.done and "review_documents" not in view.done
    assert view.active == ["review_documents"] and view.overdue == []
    assert [t.element_id for t in view.open_tasks] == ["review_documents"]
    assert view.variables["invoice_number"] == "INV-7"
    assert [e.kind for e in view.history][:2] == ["instance_started", "task_created"]
    assert view.xml.startswith("<?xml") and 'id="review_documents"' in view.xml
    flow.clock.advance(days=30)  # type: ignore[attr-defined]
    assert flow.view(iid).overdue == ["review_documents"]  # its SLA has passed
    assert flow.view(iid).active == []

"""Role queues, claims, delegation and maker-checker on the shipped document review."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import text, update

from engine.errors import (
    DelegationRefused,
    NotInRole,
    SeparationOfDuty,
    TaskAlreadyClaimed,
    TaskNotFound,
    TaskNotOpen,
    UserNotFound,
)
from engine.people import users
from engine.queues import ClaimFilter, InboxQuery
from engine.storage import HumanTask, TaskState
from tests.engine.conftest import Scenario


def _prepared(scenario: Scenario, by: str = "clerk", key: str = "SO-1") -> int:
    iid = scenario.flow.start("document_review", actor=by, business_key=key)
    scenario.complete(iid, "prepare_documents", by=by, invoice_number="INV-1")
    return iid


def test_lane_routes_a_task_without_candidate_groups(scenario: Scenario) -> None:
    iid = scenario.flow.start("document_review", actor="clerk")
    assert scenario.open_task(iid, "prepare_documents").role_ids == ["documents_logistics"]


def test_candidate_groups_route_before_the_lane(scenario: Scenario) -> None:
    iid = _prepared(scenario)
    assert scenario.open_task(iid, "review_documents").role_ids == ["risk_compliance"]


def test_a_user_works_only_in_their_roles_queues(scenario: Scenario) -> None:
    iid = _prepared(scenario)
    task = scenario.open_task(iid, "review_documents")
    for action in (
        lambda: scenario.flow.claim(task.id, actor="cashier"),
        lambda: scenario.flow.complete(task.id, actor="cashier", data={"documents_ok": True}),
    ):
        with pytest.raises(NotInRole):
            action()
    assert scenario.open_task(iid, "review_documents").assignee is None
    assert scenario.flow.inbox("cashier").total == 0
    assert [t.id for t in scenario.flow.inbox("checker").tasks] == [task.id]


def test_completing_an_unclaimed_task_claims_it_first(scenario: Scenario) -> None:
    iid = _prepared(scenario)
    task = scenario.complete(iid, "review_documents", by="checker", documents_ok=True)
    kinds = [(e.kind, e.element_id) for e in scenario.flow.history(iid)]
    claimed = kinds.index(("task_claimed", "review_documents"))
    assert kinds[claimed + 1] == ("task_completed", "review_documents")
    done = next(t for t in scenario.flow.tasks_of(iid) if t.id == task.id)
    assert (done.state, done.assignee, done.completed_by) == (
        TaskState.COMPLETED,
        "checker",
        "checker",
    )


def test_claim_is_exclusive_and_unclaim_returns_the_task(scenario: Scenario) -> None:
    flow = scenario.flow
    flow.add_user("checker2", ["risk_compliance"])
    iid = _prepared(scenario)
    task = scenario.open_task(iid, "review_documents")
    flow.claim(task.id, actor="checker")
    flow.claim(task.id, actor="checker")  # claiming one's own task again is harmless
    with pytest.raises(TaskAlreadyClaimed):
        flow.claim(task.id, actor="checker2")
    with pytest.raises(TaskAlreadyClaimed):
        flow.complete(task.id, actor="checker2", data={"documents_ok": True})
    assert flow.inbox("checker2").total == 0  # claimed by someone else: not in their inbox
    with pytest.raises(TaskAlreadyClaimed):
        flow.unclaim(task.id, actor="checker2")
    flow.unclaim(task.id, actor="checker")
    flow.claim(task.id, actor="checker2")
    assert scenario.open_task(iid, "review_documents").assignee == "checker2"


def test_delegate_goes_only_to_a_holder_of_the_role(scenario: Scenario) -> None:
    flow = scenario.flow
    flow.add_user("checker2", ["risk_compliance"])
    flow.add_user("checker3", ["risk_compliance"])
    with flow.db.transaction() as session:
        users.disable(session, "checker3", flow.clock.now())
    iid = _prepared(scenario)
    task = scenario.open_task(iid, "review_documents")
    flow.claim(task.id, actor="checker")
    refusals = []
    # outside the role, unknown, and disabled (nobody could act on it): told alike
    for name in ("cashier", "nobody", "checker3"):
        with pytest.raises(DelegationRefused) as refused:
            flow.delegate(task.id, actor="checker", to=name)
        refusals.append(refused.value.message.replace(f"'{name}'", "NAME"))
    assert refusals[0] == refusals[1] == refusals[2]
    with pytest.raises(TaskAlreadyClaimed):
        flow.delegate(task.id, actor="checker2", to="checker2")
    flow.delegate(task.id, actor="checker", to="checker2")
    assert scenario.open_task(iid, "review_documents").assignee == "checker2"
    event = flow.history(iid)[-1]
    assert (event.kind, event.actor, event.data["from"], event.data["to"]) == (
        "task_delegated",
        "checker",
        "checker",
        "checker2",
    )


def test_maker_checker_keeps_the_preparer_from_reviewing(scenario: Scenario) -> None:
    flow = scenario.flow
    iid = _prepared(scenario, by="allrounder")
    task = scenario.open_task(iid, "review_documents")
    with pytest.raises(SeparationOfDuty):
        flow.claim(task.id, actor="allrounder")
    with pytest.raises(SeparationOfDuty):
        flow.complete(task.id, actor="allrounder", data={"documents_ok": True})
    flow.claim(task.id, actor="checker")
    with pytest.raises(SeparationOfDuty):
        flow.delegate(task.id, actor="checker", to="allrounder")
    # someone else prepared it: the all-rounder may review
    other = _prepared(scenario, by="clerk", key="SO-2")
    scenario.complete(other, "review_documents", by="allrounder", documents_ok=True)
    assert flow.instance(other).status == "completed"


def test_maker_checker_holds_across_a_send_back(scenario: Scenario) -> None:
    iid = _prepared(scenario, by="clerk")
    scenario.complete(iid, "review_documents", by="allrounder", documents_ok=False)
    # sent back: the all-rounder prepares the second round, so may not review it
    scenario.complete(iid, "prepare_documents", by="allrounder", invoice_number="INV-1b")
    task = scenario.open_task(iid, "review_documents")
    with pytest.raises(SeparationOfDuty):
        scenario.flow.complete(task.id, actor="allrounder", data={"documents_ok": True})


def test_a_closed_or_unknown_task_is_refused(scenario: Scenario) -> None:
    iid = _prepared(scenario)
    task = scenario.complete(iid, "review_documents", by="checker", documents_ok=True)
    with pytest.raises(TaskNotOpen):
        scenario.flow.complete(task.id, actor="checker", data={"documents_ok": True})
    with pytest.raises(TaskNotFound):
        scenario.flow.claim(999_999, actor="checker")


def test_inbox_filters_sorts_and_pages(scenario: Scenario) -> None:
    flow = scenario.flow
    ids = [flow.start("document_review", actor="clerk", business_key=f"SO-{n}") for n in range(5)]
    first = scenario.open_task(ids[0], "prepare_documents")
    flow.claim(first.id, actor="clerk")
    flow.claim(scenario.open_task(ids[1], "prepare_documents").id, actor="clerk2")

    everything = flow.inbox("clerk")
    assert everything.total == 4  # the one clerk2 claimed is not clerk's to work
    assert flow.inbox("clerk", InboxQuery(claim=ClaimFilter.CLAIMED)).total == 1
    assert flow.inbox("clerk", InboxQuery(claim=ClaimFilter.UNCLAIMED)).total == 3
    assert [t.id for t in flow.inbox("clerk", InboxQuery(business_key="SO-3")).tasks] == [
        scenario.open_task(ids[3], "prepare_documents").id
    ]
    assert flow.inbox("clerk", InboxQuery(role="risk_compliance")).total == 0
    page1 = flow.inbox("clerk", InboxQuery(limit=3, sort="created"))
    page2 = flow.inbox("clerk", InboxQuery(limit=3, offset=3, sort="created"))
    assert (page1.total, len(page1.tasks), len(page2.tasks)) == (4, 3, 1)
    assert not {t.id for t in page1.tasks} & {t.id for t in page2.tasks}


def test_inbox_orders_by_due_time_then_priority_and_filters_overdue(scenario: Scenario) -> None:
    flow = scenario.flow
    now = flow.clock.now()
    from datetime import timedelta

    from engine.storage import HumanTask

    ids = [flow.start("document_review", actor="clerk") for _ in range(3)]
    tasks = [scenario.open_task(i, "prepare_documents").id for i in ids]
    with flow.db.transaction() as session:  # due dates come from SLAs (issue 5); set them here
        session.get_one(HumanTask, tasks[0]).due_at = now + timedelta(hours=5)
        session.get_one(HumanTask, tasks[1]).due_at = now - timedelta(hours=1)
        session.get_one(HumanTask, tasks[2]).priority = 90
    by_due = [t.id for t in flow.inbox("clerk", InboxQuery(sort="due")).tasks]
    assert by_due == [tasks[1], tasks[0], tasks[2]]  # no due date last
    by_priority = [t.id for t in flow.inbox("clerk", InboxQuery(sort="priority")).tasks]
    assert by_priority[0] == tasks[2]
    assert [t.id for t in flow.inbox("clerk", InboxQuery(overdue=True)).tasks] == [tasks[1]]
    assert flow.inbox("clerk", InboxQuery(overdue=False)).total == 2


def test_inbox_refuses_a_bad_query(scenario: Scenario) -> None:
    from engine.errors import Invalid

    with pytest.raises(Invalid):
        scenario.flow.inbox("clerk", InboxQuery(sort="colour"))
    with pytest.raises(Invalid):
        scenario.flow.inbox("clerk", InboxQuery(limit=0))


def test_an_unknown_user_can_do_nothing(scenario: Scenario) -> None:
    iid = _prepared(scenario)
    task = scenario.open_task(iid, "review_documents")
    for action in (
        lambda: scenario.flow.complete(task.id, actor="mallory", data={"documents_ok": True}),
        lambda: scenario.flow.claim(task.id, actor="mallory"),
    ):
        with pytest.raises(UserNotFound):
            action()
    assert scenario.open_task(iid, "review_documents").assignee is None


def _review_behind_the_lock(
    scenario: Scenario, instance_id: int, review_id: int, change: Any
) -> BaseException | None:
    """The allrounder completes the review in a thread while another transaction holds
    the instance's lock and makes ``change`` (as a command in progress would), then commits
    it; what the completion raised, if anything. It must have waited, then seen the change."""
    flow = scenario.flow
    raised: list[BaseException | None] = []

    def attempt() -> None:
        try:
            flow.complete(review_id, actor="allrounder", data={"documents_ok": 1})
            raised.append(None)
        except Exception as exc:  # the command's refusal is the test's to judge
            raised.append(exc)

    thread = threading.Thread(target=attempt)
    with flow.db.unit() as session:  # SQLite: the writer's lock; PostgreSQL: the row's
        conn = session.connection()
        if flow.db.is_postgres:
            conn.execute(
                text("SELECT id FROM instance WHERE id = :id FOR UPDATE"), {"id": instance_id}
            )
        conn.execute(change)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), "the command did not wait for the instance's lock"
    thread.join(30)
    assert raised, "the command did not finish"
    return raised[0]


def test_a_completion_that_waited_for_the_lock_sees_the_task_done(scenario: Scenario) -> None:
    """Read before the wait, the task would still be open: it was completed meanwhile."""
    iid = _prepared(scenario)
    review = scenario.open_task(iid, "review_documents")
    done = (
        update(HumanTask)
        .where(HumanTask.id == review.id)
        .values(state=TaskState.COMPLETED, completed_by="checker")
    )
    refused = _review_behind_the_lock(scenario, iid, review.id, done)
    assert isinstance(refused, TaskNotOpen)


def test_maker_checker_counts_work_done_while_the_command_waited(scenario: Scenario) -> None:
    """The actor's past work in the instance is read under the lock too: here the holder
    records the preparation as the allrounder's, so the allrounder may not review it."""
    iid = _prepared(scenario)
    review = scenario.open_task(iid, "review_documents")
    prepared_by_allrounder = (
        update(HumanTask)
        .where(HumanTask.instance_id == iid, HumanTask.element_id == "prepare_documents")
        .values(completed_by="allrounder")
    )
    refused = _review_behind_the_lock(scenario, iid, review.id, prepared_by_allrounder)
    assert isinstance(refused, SeparationOfDuty)
    assert scenario.open_task(iid, "review_documents").id == review.id  # still open

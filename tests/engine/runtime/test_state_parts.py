"""Incremental saves: an instance's large variables are saved apart, each once under its
content's hash, so a step that leaves them unchanged writes only the small rest."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import event, select

from engine.commands import reading
from engine.commands.reading import InstanceQuery
from engine.execution import has_parts, serialization, variables
from engine.execution.serialization import PART_MIN
from engine.runtime import LiveWorkflows
from engine.storage import Database, Instance, StatePart, TaskState, upgrade
from engine.tradeflow import Tradeflow
from tests.diagrams import diagram, seq, user

LOOP = diagram(
    "order_loop",
    '<bpmn:startEvent id="s"/>'
    + user("record")
    + '<bpmn:exclusiveGateway id="g" default="g_to_e"/><bpmn:endEvent id="e"/>'
    + seq("s", "record")
    + seq("record", "g")
    + seq("g", "record", "more")
    + seq("g", "e"),
)
NESTED = diagram(
    "nested",
    '<bpmn:startEvent id="s"/><bpmn:subProcess id="sub"><bpmn:startEvent id="ss"/>'
    + user("inner")
    + '<bpmn:endEvent id="se"/>' + seq("ss", "inner") + seq("inner", "se") + "</bpmn:subProcess>"
    + user("outer") + '<bpmn:endEvent id="e"/>'
    + seq("s", "sub") + seq("sub", "outer") + seq("outer", "e"),
)  # fmt: skip
LINES = [
    {"sku": f"SKU-{n:05d}", "text": "Hex bolt M8x40 DIN 933, zinc plated, 上海", "qty": n}
    for n in range(300)
]


def started(flow: Tradeflow, **variables: Any) -> int:
    flow.deploy([LOOP], actor="owner")
    return flow.start("order_loop", actor="cashier", variables=variables)


def step(flow: Tradeflow, iid: int, **data: Any) -> None:
    [task] = [t for t in flow.tasks_of(iid) if t.state == TaskState.OPEN]
    flow.complete(task.id, actor="cashier", data={"more": True, **data})


def parts(flow: Tradeflow, iid: int) -> dict[str, str]:
    with flow.db.reading() as session:
        rows = session.scalars(select(StatePart).where(StatePart.instance_id == iid)).all()
    return {r.key: r.body for r in rows}


def test_a_large_variable_is_saved_once_and_restored(flow: Tradeflow) -> None:
    iid = started(flow, lines=LINES, note="small")
    stored = parts(flow, iid)
    assert len(stored) == 1 and json.loads(next(iter(stored.values()))) == LINES
    state = flow.instance(iid).state
    assert has_parts(state) and len(state) < PART_MIN and "SKU-00299" not in state
    for n in range(5):
        step(flow, iid, note=f"round {n}")
        assert parts(flow, iid) == stored  # not written again: the same part
    assert flow.variables(iid)["lines"] == LINES  # each step restored it (no live cache)
    assert flow.variables(iid)["note"] == "round 4"


def test_a_changed_variable_replaces_its_part(flow: Tradeflow) -> None:
    iid = started(flow, lines=LINES)
    [before] = parts(flow, iid)
    longer = [*LINES, {"sku": "SKU-X", "text": "one more", "qty": 1}]
    step(flow, iid, lines=longer)
    assert flow.variables(iid)["lines"] == longer
    # the start keeps the first value (Spiff keeps a task's changes to its parent's
    # data as a delta): the change is one more part, the first one not written again
    after = parts(flow, iid)
    assert before in after and len(after) == 2
    assert sorted(json.loads(b) for b in after.values()) == sorted([LINES, longer])
    step(flow, iid)
    assert parts(flow, iid) == after
    step(flow, iid, lines=[])  # the change is small: inline; the change before it goes
    step(flow, iid)
    assert set(parts(flow, iid)) == {before}
    assert flow.variables(iid)["lines"] == []


def test_a_users_dict_named_like_the_refs_is_data(flow: Tradeflow) -> None:
    odd = {"tradeflow_parts": {"lines": "0" * 32}, "x": "y" * PART_MIN}
    iid = started(flow, odd=odd, small={"tradeflow_parts": 1})
    step(flow, iid)
    assert flow.variables(iid)["odd"] == odd
    assert flow.variables(iid)["small"] == {"tradeflow_parts": 1}


def test_searching_the_data_finds_text_in_a_large_variable(flow: Tradeflow) -> None:
    iid = started(flow, lines=LINES)
    with flow.db.reading() as session:
        found, total = reading.search(session, InstanceQuery(data_contains="SKU-00123"))
        assert [i.id for i in found] == [iid] and total == 1
        found, _ = reading.search(session, InstanceQuery(data_contains="上海"))
        assert [i.id for i in found] == [iid]


def test_going_back_a_migration_puts_the_parts_back_inline(db: Database, flow: Tradeflow) -> None:
    from alembic import command

    from engine.storage.schema import alembic_config

    iid = started(flow, lines=LINES)
    with db.engine.begin() as conn:
        cfg = alembic_config(db)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0010")
    with db.engine.connect() as conn:
        state = conn.scalar(select(Instance.state).where(Instance.id == iid))
    assert state is not None and not has_parts(state) and "SKU-00299" in state
    upgrade(db)
    flow.runtime.live.clear()
    assert flow.variables(iid)["lines"] == LINES
    step(flow, iid)  # split again at its next save
    assert len(parts(flow, iid)) == 1 and flow.variables(iid)["lines"] == LINES


def inserts_of_parts(flow: Tradeflow) -> list[str]:
    """The INSERTs into state_part the flow's database is sent from now on."""
    sent: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO STATE_PART"):
            sent.append(statement)

    event.listen(flow.db.engine, "before_cursor_execute", seen)
    return sent


@pytest.mark.parametrize("live", [False, True], ids=["restored", "live"])
def test_an_unchanged_part_is_not_sent_again(flow: Tradeflow, live: bool) -> None:
    """Whether each command restores the workflow or takes it from the live cache."""
    if live:
        flow.runtime.live = LiveWorkflows()
    iid = started(flow, lines=LINES)
    sent = inserts_of_parts(flow)
    for n in range(4):
        step(flow, iid, note=f"round {n}")
    assert sent == []
    step(flow, iid, lines=[*LINES, {"sku": "one more"}])
    assert len(sent) == 1
    assert flow.variables(iid)["lines"][-1] == {"sku": "one more"}


def test_a_read_that_overlaps_saves_gets_a_whole_state(flow: Tradeflow) -> None:
    """A reader holds an instance row read before two saves dropped the part it refers
    to (PostgreSQL reads each statement afresh): it reads the state again."""
    iid = started(flow, lines=[])
    longer = [*LINES, {"sku": "one more"}]
    step(flow, iid, lines=longer)  # a task's delta holds it, as a part
    runtime = flow.runtime
    with flow.db.reading() as session:
        instance = session.get_one(Instance, iid)
        assert has_parts(instance.state)
        step(flow, iid, lines=[])  # the change is small: inline
        step(flow, iid)  # the task that held the longer list is gone, and its part
        step(flow, iid)
        restored = variables(runtime.load(session, instance))
    assert restored["lines"] in ([], longer)  # the state as of one snapshot or the other


def test_a_finished_subprocess_keeps_its_data_apart(flow: Tradeflow) -> None:
    flow.deploy([NESTED], actor="owner")
    iid = flow.start("nested", actor="cashier", variables={"lines": LINES})
    [inner] = [t for t in flow.tasks_of(iid) if t.state == TaskState.OPEN]
    flow.complete(inner.id, actor="cashier", data={"checked": True})
    for _ in range(2):
        state = flow.instance(iid).state
        assert "SKU-00299" not in state and len(state) < 2 * PART_MIN
        assert flow.variables(iid)["lines"] == LINES
        step_outer = [t for t in flow.tasks_of(iid) if t.state == TaskState.OPEN]
        assert [t.element_id for t in step_outer] == ["outer"]
        flow.runtime.live.clear()


def test_hostile_values_come_back_as_a_whole_save_writes_them() -> None:
    big = ["x" * 10, float("nan"), float("inf"), 2**70, "\udc80", {"1": [None] * 5}] * 400
    task = {
        "id": "t",
        "data": {"big": big, "small": 1, "nan": float("nan")},
        "delta": {"updates": {"big2": list(big), "n": 2**70}, "deletions": []},
    }
    parts: dict[str, str] = {}
    text, own = serialization._split(task, parts)
    assert own and len(text) < PART_MIN
    whole = json.loads(serialization._dumps(task))
    split = json.loads(text)
    serialization._join_task(split, own)
    assert json.dumps(split, sort_keys=True) == json.dumps(whole, sort_keys=True)

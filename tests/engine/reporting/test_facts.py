"""Case facts: the engine applies whatever milestones its content declares; the trade's
live in trade/milestones.py, loaded by name, and a diagram version that drops one of
their elements is deployed with a warning."""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys
from datetime import UTC, datetime
from types import ModuleType

import pytest
from sqlalchemy import select

from engine.reporting import facts
from engine.storage import CaseFacts, Writes
from engine.tradeflow import Tradeflow
from tests.conftest import ROOT
from tests.diagrams import diagram, seq, user

START_END = '<bpmn:startEvent id="start"/><bpmn:endEvent id="end"/>'


def _two_step(pid: str, *steps: str) -> tuple[str, bytes]:
    chain = ["start", *steps, "end"]
    body = START_END + "".join(user(s) for s in steps)
    body += "".join(seq(a, b) for a, b in itertools.pairwise(chain))
    return diagram(pid, body)


def test_the_trade_content_is_what_the_engine_loads_by_default() -> None:
    import trade

    assert facts.configured() is trade.MILESTONES
    assert facts.milestone_elements()["prepare_quotation"] == "quoted_at, owner, grade"


def test_another_content_module_replaces_the_trades(
    flow: Tradeflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second department names its own module: its milestones are recorded, the
    trade's are not, and the engine is not edited."""
    theirs = ModuleType("their_milestones")
    theirs.MILESTONES = {  # type: ignore[attr-defined]
        (facts.COMPLETED, "approve"): facts.Milestone("signed_at", first={"owner": facts.actor})
    }
    monkeypatch.setitem(sys.modules, "their_milestones", theirs)
    monkeypatch.setenv(facts.CONTENT, "their_milestones")
    facts.configured.cache_clear()
    try:
        flow.deploy([_two_step("their_process", "approve", "prepare_quotation")], actor="owner")
        instance_id = flow.start("their_process", actor="someone")
        for _ in range(2):
            [task] = [t for t in flow.tasks_of(instance_id) if t.state.value == "open"]
            flow.complete(task.id, actor="cashier")
    finally:
        facts.configured.cache_clear()
    with flow.db.reading() as session:
        row = session.scalars(select(CaseFacts).where(CaseFacts.instance_id == instance_id)).one()
    assert row.signed_at is not None and row.owner == "cashier"
    assert row.quoted_at is None  # the trade's milestone, not theirs


def test_a_content_module_without_milestones_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(facts.CONTENT, "json")
    facts.configured.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="TRADEFLOW_MILESTONES=json"):
            facts.configured()
    finally:
        facts.configured.cache_clear()


def test_the_engine_never_imports_the_trade_content() -> None:
    found = []
    for file in sorted((ROOT / "engine").rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            found += [(file.name, n) for n in names if n.split(".")[0] == "trade"]
    assert found == []
    # and the engine's facts module loads without it on the path being imported first
    code = "import sys, engine.reporting.facts; assert 'trade' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_a_version_that_drops_a_milestone_element_is_deployed_with_a_warning(
    flow: Tradeflow,
) -> None:
    first = flow.deploy([_two_step("quoting", "prepare_quotation", "send_quotation")], actor="o")
    assert first.warnings == []
    again = flow.deploy([_two_step("quoting", "prepare_quotation", "check")], actor="o")
    assert [d.version for d in again.definitions] == [2]  # deployed all the same
    assert len(again.warnings) == 1
    assert "'quoting'" in again.warnings[0] and "'send_quotation'" in again.warnings[0]
    assert "quote_sent_at" in again.warnings[0]
    # an element that marks nothing may go without a word
    third = flow.deploy([_two_step("quoting", "prepare_quotation")], actor="o")
    assert third.warnings == []


def test_record_applies_only_the_milestones_it_is_given(flow: Tradeflow) -> None:
    instance_id = flow.start("document_review", actor="clerk", business_key="PO-9")
    event = {
        "kind": facts.COMPLETED,
        "element_id": "review_documents",
        "instance_id": instance_id,
        "at": datetime(2026, 3, 1, tzinfo=UTC),
        "actor": "checker",
        "data": {"submitted": {"documents_ok": False}},
    }
    with flow.db.unit() as session:
        writes = Writes(session.connection())
        facts.record(writes, [event], milestones={})
        writes.flush()
        nothing = session.scalar(
            select(CaseFacts.reviewed_at).where(CaseFacts.instance_id == instance_id)
        )
        writes = Writes(session.connection())
        facts.record(writes, [event])
        writes.flush()
        row = session.execute(
            select(CaseFacts.reviewed_at, CaseFacts.documents_first_pass).where(
                CaseFacts.instance_id == instance_id
            )
        ).one()
    assert nothing is None
    assert row.reviewed_at is not None and row.documents_first_pass is False


def test_content_naming_a_column_the_case_facts_lack_is_refused_at_start(
    flow: Tradeflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A typo in a content's milestones would fail every completion of its element at the
    flush, and stick the instance: it is refused when the engine is made instead."""
    bad = ModuleType("bad_milestones")
    bad.MILESTONES = {  # type: ignore[attr-defined]
        (facts.COMPLETED, "approve"): facts.Milestone(
            "grade", first={"ownr": facts.actor}, latest={"instance_id": facts.actor}
        ),
        ("task_completed",): facts.Milestone(),
    }
    monkeypatch.setitem(sys.modules, "bad_milestones", bad)
    monkeypatch.setenv(facts.CONTENT, "bad_milestones")
    facts.configured.cache_clear()
    try:
        with pytest.raises(RuntimeError) as refused:
            Tradeflow(flow.db)
    finally:
        facts.configured.cache_clear()
    said = str(refused.value)
    assert "TRADEFLOW_MILESTONES=bad_milestones" in said
    assert "'grade' is no time column" in said
    assert "no column 'ownr'" in said and "no column 'instance_id'" in said
    assert "a key is (event kind, element id)" in said
    import trade

    assert facts.check(trade.MILESTONES) == []  # the trade's own are sound

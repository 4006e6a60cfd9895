"""The unit of work's pending writes (engine/storage/writes.py): what a command adds or
changes reaches the database once, at the flush, as it then stands, on both databases;
and nothing outside storage asks which database it runs on."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import select, text

from engine.storage import HumanTask, HumanTaskRole, Prepared, TaskRow, TaskState, Writes, store
from engine.storage import prepared as db
from engine.tradeflow import Tradeflow
from tests.conftest import ROOT

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _row(instance_id: int, spiff_id: str) -> TaskRow:
    return TaskRow(
        id=0,
        instance_id=instance_id,
        spiff_task_id=spiff_id,
        element_id="prepare_documents",
        name="准备单据",
        state=TaskState.OPEN,
        assignee=None,
        priority=70,
        form_key=None,
        created_at=NOW,
        claimed_at=None,
        ended_at=None,
        completed_by=None,
        due_at=None,
        candidate_roles="documents_logistics",
    )


def _stored(flow: Tradeflow, task_id: int) -> tuple[TaskState, list[str]] | None:
    with flow.db.reading() as session:
        state = session.scalar(select(HumanTask.state).where(HumanTask.id == task_id))
        roles = session.scalars(
            select(HumanTaskRole.role_id).where(HumanTaskRole.task_id == task_id)
        ).all()
    return None if state is None else (state, sorted(roles))


def test_a_task_made_and_cancelled_in_one_command_is_stored_cancelled(flow: Tradeflow) -> None:
    """Taken ahead (PostgreSQL) or inserted at once, a task made and cancelled before the
    flush is written as it stands at the flush, with its role rows (an earlier version,
    with the bookkeeping spread over routing and settle, once left such a task open)."""
    instance_id = flow.start("document_review", actor="clerk", business_key="PO-1")
    [task] = flow.tasks_of(instance_id)
    with flow.db.unit() as session:
        writes = Writes(session.connection())
        facts = writes.task_facts(task.id, "clerk", creates_task=True)
        assert facts is not None
        assert (facts.spare_task_id is not None) == flow.db.is_postgres
        made = _row(instance_id, "a" * 36)
        made_id = writes.add_task(made, ["documents_logistics", "finance"])
        assert made_id == made.id and made_id > 0
        writes.cancel_task(made_id, NOW)
        kept = _row(instance_id, "b" * 36)
        writes.add_task(kept, ["finance"])
        writes.flush()
    assert _stored(flow, made_id) == (TaskState.CANCELLED, ["documents_logistics", "finance"])
    assert _stored(flow, kept.id) == (TaskState.OPEN, ["finance"])


def test_a_row_is_written_as_it_stands_at_the_flush_and_a_cancel_spares_a_closed_task(
    flow: Tradeflow,
) -> None:
    instance_id = flow.start("document_review", actor="clerk", business_key="PO-1")
    [task] = flow.tasks_of(instance_id)
    with flow.db.unit() as session:
        writes = Writes(session.connection())
        row = store.task(session.connection(), task.id)
        assert row is not None
        writes.save_task(row)
        row.state, row.completed_by, row.ended_at = TaskState.COMPLETED, "clerk", NOW
        writes.cancel_task(row.id, NOW)  # completed: a cancel leaves it so
        writes.flush()
    assert _stored(flow, task.id) == (TaskState.COMPLETED, ["documents_logistics"])
    # a row the unit does not hold is cancelled in the database, only if still open
    other = flow.start("document_review", actor="clerk", business_key="PO-2")
    [second] = flow.tasks_of(other)
    with flow.db.unit() as session:
        writes = Writes(session.connection())
        writes.cancel_task(second.id, NOW)
        writes.cancel_task(task.id, NOW)
        writes.flush()
    assert _stored(flow, second.id) == (TaskState.CANCELLED, ["documents_logistics"])
    assert _stored(flow, task.id) == (TaskState.COMPLETED, ["documents_logistics"])


def test_a_part_of_the_unit_rolled_back_leaves_no_pending_writes_behind(
    flow: Tradeflow,
) -> None:
    """A savepoint that fails (a timer firing for one of several instances) takes its
    pending writes with it: the next command's flush must not write them."""
    instance_id = flow.start("document_review", actor="clerk", business_key="PO-1")
    [task] = flow.tasks_of(instance_id)
    with flow.runtime.unit("test") as unit:
        with pytest.raises(RuntimeError), unit.savepoint():
            # on PostgreSQL its id is taken ahead: the row would wait for the flush
            assert unit.writes.task_facts(task.id, "clerk", creates_task=True) is not None
            unit.writes.add_task(_row(instance_id, "c" * 36), ["finance"])
            unit.writes.cancel_task(task.id, NOW)
            raise RuntimeError("the part fails")
        unit.writes.flush()
    with flow.db.reading() as session:
        count = session.scalar(
            text("SELECT count(*) FROM human_task WHERE spiff_task_id = :s"), {"s": "c" * 36}
        )
    assert count == 0
    assert [t.state for t in flow.tasks_of(instance_id)] == [TaskState.OPEN]


def test_a_completion_takes_the_next_tasks_id_ahead(
    flow: Tradeflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A completion mostly creates the next task: it asks for that id with the read of
    the task it completes (on PostgreSQL, one round trip fewer; SQLite takes none)."""
    asked: list[bool] = []
    real = store.task_facts

    def spy(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs.get("take_id", False))
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "task_facts", spy)
    instance_id = flow.start("document_review", actor="clerk", business_key="PO-1")
    [task] = flow.tasks_of(instance_id)
    flow.claim(task.id, actor="clerk")
    done = flow.complete(task.id, actor="clerk", data={"invoice_number": "INV-1"})
    assert asked == [False, True]  # the claim creates nothing, the completion does
    [following] = done.next_tasks or []
    assert following.id > task.id
    assert _stored(flow, following.id) == (TaskState.OPEN, sorted(following.role_ids))


def test_prepared_refuses_a_sqlalchemy_whose_private_members_were_not_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    statement = Prepared(select(HumanTask.id).where(HumanTask.id == sqlalchemy.bindparam("id")))
    dialect = sqlalchemy.create_engine("sqlite://").dialect
    assert statement.plan(dialect).columns == ("id",)  # the version pinned passes
    monkeypatch.setattr(sqlalchemy, "__version__", "2.2.0")
    fresh = Prepared(select(HumanTask.id))
    with pytest.raises(RuntimeError, match=r"2\.2\.0.*2\.1\.9"):
        fresh.plan(dialect)
    with pytest.raises(RuntimeError, match=r"2\.2\.0"):
        db.check_sqlalchemy()
    assert db.SQLALCHEMY_CHECKED == ("2.1.9",)


_ASKS_WHICH_DATABASE = ("is_postgres", "dialect", "postgresql", "pg_advisory", "pipeline(")


def test_nothing_outside_storage_asks_which_database_it_runs_on() -> None:
    """Dialects, pipelines and advisory locks are storage's to know (locks.py, writes.py,
    store.py, db.py): the rooms above say what they need, not how each database does it."""
    found = []
    for package in ("engine", "api", "cli"):
        for file in sorted((ROOT / package).rglob("*.py")):
            relative = file.relative_to(ROOT).as_posix()
            if relative.startswith("engine/storage/"):
                continue
            tree = ast.parse(file.read_text())
            # code only: docstrings may explain what a storage function does
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and node.attr in ("is_postgres", "dialect"):
                    found.append((relative, node.attr))
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and node is not getattr(tree.body[0], "value", None)
                    and any(word in node.value for word in ("pg_advisory", "postgresql"))
                ):
                    found.append((relative, node.value[:40]))
                if isinstance(node, ast.ImportFrom) and node.module == "sqlalchemy.dialects":
                    found.append((relative, "sqlalchemy.dialects"))
                if isinstance(node, ast.Attribute) and node.attr == "pipeline":
                    found.append((relative, "pipeline"))
    assert found == []

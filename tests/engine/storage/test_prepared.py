"""Statements run straight through the driver (engine/storage/db.py ``Prepared``) store and read
exactly what SQLAlchemy's own execute does, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Connection, Table, bindparam, insert, select, text

from engine.audit import trail as audit
from engine.audit import verification
from engine.reporting import facts
from engine.storage import Database, HumanTask, Prepared, TaskRow, TaskState, store, writes
from engine.tradeflow import Tradeflow

_T: Table = HumanTask.__table__  # type: ignore[assignment]
SHANGHAI = timezone(timedelta(hours=8))


def _stored(conn: Connection, table: str, key: str, value: Any) -> tuple[Any, ...]:
    """A row as the database holds it (the driver's values, no conversion), id left out."""
    found = conn.exec_driver_sql(
        f"SELECT * FROM {table} WHERE {key} = {int(value)}"  # our names, an int
    ).first()
    assert found is not None
    return tuple(found)[1:]


def _task_row(instance_id: int, spiff_id: str) -> TaskRow:
    return TaskRow(
        id=0,
        instance_id=instance_id,
        spiff_task_id=spiff_id,
        element_id="prepare_documents",
        name="准备单据 Prepare documents",
        state=TaskState.OPEN,
        assignee=None,
        priority=70,
        form_key="prepare_documents",
        created_at=datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=SHANGHAI),
        claimed_at=None,
        ended_at=None,
        completed_by=None,
        due_at=datetime(2026, 3, 2, 1, 0, tzinfo=UTC),
        candidate_roles="documents_logistics",
    )


def _instance(flow: Tradeflow) -> int:
    return flow.start("document_review", actor="clerk", business_key="PO-1")


def test_a_task_inserted_and_updated_through_the_driver_is_stored_as_sqlalchemy_stores_it(
    flow: Tradeflow,
) -> None:
    instance_id = _instance(flow)
    with flow.db.unit() as session:
        conn = session.connection()
        ours = _task_row(instance_id, "a" * 36)
        store.insert_task(conn, ours)  # Prepared
        store.add_task_roles(conn, [(ours.id, r) for r in ours.role_ids])
        theirs = _task_row(instance_id, "b" * 36)
        values = {n: getattr(theirs, n) for n in store.TASK_COLUMNS if n != "id"}
        theirs.id = int(conn.execute(insert(_T).values(values).returning(_T.c.id)).scalar_one())
        conn.execute(insert(store._R), {"task_id": theirs.id, "role_id": "documents_logistics"})
        assert (
            _stored(conn, "human_task", "id", ours.id)[2:]
            == _stored(conn, "human_task", "id", theirs.id)[2:]
        )  # all but the instance and the Spiff task id
        roles = "SELECT role_id FROM human_task_role WHERE task_id = "
        assert conn.exec_driver_sql(roles + str(ours.id)).all() == [("documents_logistics",)]

        # an update with every kind of value: an enum, aware times, None
        for row in (ours, theirs):
            row.state, row.assignee, row.completed_by = TaskState.COMPLETED, "li.na", "li.na"
            row.claimed_at = datetime(2026, 3, 1, 10, 0, tzinfo=SHANGHAI)
            row.ended_at = datetime(2026, 3, 1, 2, 5, 59, 999999, tzinfo=UTC)
        store.save_task(conn, ours)  # Prepared
        params = {f"b_{n}": getattr(theirs, n) for n in store._MUTABLE_TASK}
        conn.execute(store._SAVE_TASK.statement, {**params, "b_id": theirs.id})
        assert (
            _stored(conn, "human_task", "id", ours.id)[2:]
            == _stored(conn, "human_task", "id", theirs.id)[2:]
        )
        # and what comes back is what SQLAlchemy gives back, converted the same way
        read = store.task(conn, ours.id)
        expected = conn.execute(store._SELECT_TASK, {"id": ours.id}).first()
        assert read is not None and expected is not None
        assert read == TaskRow(**expected._asdict())
        assert read.state is TaskState.COMPLETED and read.form_id is not None
        assert read.ended_at is not None and read.ended_at.replace(tzinfo=UTC) == ours.ended_at


def test_the_task_facts_read_through_the_driver_equal_sqlalchemys(flow: Tradeflow) -> None:
    instance_id = _instance(flow)
    [task] = flow.tasks_of(instance_id)
    flow.complete(task.id, actor="clerk", data={"invoice_number": "INV-1"})
    [task] = [t for t in flow.tasks_of(instance_id) if t.state == TaskState.OPEN]
    with flow.db.unit() as session:
        conn = session.connection()
        for actor in ("clerk", "checker", "nobody"):
            ours = store._READ_TASK_FACTS.first(conn, {"id": task.id, "actor": actor})
            theirs = conn.execute(store._TASK_FACTS, {"id": task.id, "actor": actor}).first()
            assert theirs is not None and ours == theirs._asdict()
        facts_ = store.task_facts(conn, task.id, "clerk", take_id=True)
        assert facts_ is not None and facts_.actor_done == {"prepare_documents"}
        assert store._READ_TASK_FACTS.first(conn, {"id": 10**9, "actor": "clerk"}) is None


def test_audit_rows_written_through_the_driver_keep_their_chain(flow: Tradeflow) -> None:
    instance_id = _instance(flow)
    [task] = flow.tasks_of(instance_id)
    flow.complete(task.id, actor="clerk", data={"invoice_number": "发票-1 ✓"})
    with flow.db.reading() as session:
        assert verification.verify_stream(session, audit.instance_stream(instance_id)).ok
        events = [e for e in flow.history(instance_id) if e.kind == "task_completed"]
    assert events[0].data["submitted"]["invoice_number"] == "发票-1 ✓"


def test_a_milestone_sets_its_first_columns_once_and_its_latest_ones_every_time(
    flow: Tradeflow,
) -> None:
    instance_id = _instance(flow)
    first = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def completed(at: datetime, grade: str) -> dict[str, Any]:
        return {
            "kind": "task_completed",
            "element_id": "prepare_quotation",
            "instance_id": instance_id,
            "at": at,
            "actor": "li.na",
            "data": {"submitted": {"customer_grade": grade}},
        }

    with flow.db.unit() as session:
        conn = session.connection()
        pending = writes.Writes(conn)
        facts.record(pending, [completed(first, "B"), completed(first + timedelta(days=1), "A")])
        pending.flush()
        row = conn.execute(
            select(facts._TABLE.c.quoted_at, facts._TABLE.c.owner, facts._TABLE.c.grade).where(
                facts._TABLE.c.instance_id == instance_id
            )
        ).one()
    assert (row.quoted_at.replace(tzinfo=UTC), row.owner, row.grade) == (first, "li.na", "A")


def test_values_of_the_statement_itself_and_refusals(db: Database) -> None:
    # a value written into the statement (a separator, a LIMIT) goes with every execution
    query = Prepared(select(text("1")).select_from(_T).where(_T.c.state == TaskState.OPEN).limit(1))
    with db.unit() as session:
        assert query.run(session.connection(), {}) == []
    expanding = Prepared(select(_T.c.id).where(_T.c.id.in_(bindparam("ids", expanding=True))))
    with pytest.raises(ValueError, match="expanding"), db.unit() as session:
        expanding.run(session.connection(), {"ids": [1]})


def test_a_write_refused_among_the_units_last_writes_undoes_the_whole_unit(
    flow: Tradeflow,
) -> None:
    # the last writes go together (PostgreSQL: one round trip); one of them refused (an
    # audit event whose place in the chain is taken) must still undo everything
    instance_id = _instance(flow)
    [task] = flow.tasks_of(instance_id)
    with flow.db.reading() as session:
        head = session.execute(
            text("SELECT audit_seq, revision FROM instance WHERE id = :id"), {"id": instance_id}
        ).one()
    with flow.db.unit() as session:
        taken = dict(
            stream=audit.instance_stream(instance_id), seq=head.audit_seq + 1,
            instance_id=instance_id, at=datetime(2026, 3, 1, tzinfo=UTC), actor="intruder",
            kind="note", element_id=None, element_name=None, role=None, data="{}",
            prev_hash="0" * 64, hash="1" * 64,
        )  # fmt: skip
        writes.INSERT_EVENT.run(session.connection(), taken)
    with pytest.raises(Exception, match=r"(?i)unique"):
        flow.complete(task.id, actor="clerk", data={"invoice_number": "INV-1"})
    [still] = flow.tasks_of(instance_id)
    assert still.state == TaskState.OPEN
    with flow.db.reading() as session:
        after = session.execute(
            text("SELECT audit_seq, revision FROM instance WHERE id = :id"), {"id": instance_id}
        ).one()
        kinds = session.execute(
            text("SELECT kind FROM audit_event WHERE instance_id = :id AND seq > :seq"),
            {"id": instance_id, "seq": head.audit_seq},
        ).all()
    assert tuple(after) == tuple(head) and kinds == [("note",)]

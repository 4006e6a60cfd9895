"""Routing, the write side of the role queues: as a unit settles, READY user tasks become
human_task rows in their roles' queues (and rows of tasks gone are cancelled), message
subscriptions follow what the workflow waits for, and SLAs that passed are recorded and
escalated. The inbox (inbox.py) reads the rows."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from SpiffWorkflow.task import Task

from engine.audit import EventKind
from engine.execution import Frontier, correlation_keys, scan, variables
from engine.modeling import messages_of, role_id
from engine.queues.assignment import MAX_QUEUES, assign
from engine.storage import TaskRow, TaskState, store

if TYPE_CHECKING:
    from engine.runtime import Work


ROW = "tradeflow_task"  # internal_data key on a READY user task: its human_task row id
DUE = "tradeflow_due"  # ... its SLA due time (ISO 8601), so wake-ups need no query
BREACHED = "tradeflow_breached"  # ... set once its SLA breach is recorded


def reconcile(work: Work, frontier: Frontier | None = None) -> None:
    """Make the human_task rows and message subscriptions match the workflow."""
    frontier = frontier or scan(work.workflow)
    _reconcile_tasks(work, frontier.ready_manual)
    if work.definition.messages:  # else nothing here (or in what it calls) awaits a message
        names = sorted({d.name for t in frontier.waiting for d in messages_of(t.task_spec)})
        keys = correlation_keys(variables(work.workflow, frontier)) if names else {}
        work.writes.subscribe(work.instance, names, keys)


def _reconcile_tasks(work: Work, ready: list[Task]) -> None:
    ready_ids = {str(t.id) for t in ready}
    for spiff_id, (row_id, element_id, name) in list(work.open_rows.items()):
        if spiff_id in ready_ids:
            continue
        del work.open_rows[spiff_id]
        # a row this command read, or made (its insert may still wait for the last writes)
        closed = work.tasks.get(row_id) or work.created.get(row_id)
        if closed is not None and closed.state != TaskState.OPEN:
            continue  # this command completed it
        # gone without being completed: an interrupting timer or a cancel took it away
        work.writes.cancel_task(row_id, work.now)
        work.audit(
            EventKind.TASK_CANCELLED,
            element_id=element_id,
            element_name=name,
            data={"task_id": row_id},
        )
    for task in ready:
        spiff_id = str(task.id)
        if spiff_id in work.open_rows:
            continue
        spec = task.task_spec
        rule = work.definition.rule(task.workflow.spec.name, spec.bpmn_id)
        roles = list(rule.roles) if rule else ([role_id(spec.lane)] if spec.lane else [])
        due = work.calendar.add(work.now, rule.sla) if rule and rule.sla else None
        priority = rule.priority if rule else 50
        assignee = None
        if rule is not None and rule.assignment:
            given = assign(task, rule.assignment, roles, priority, due, work.now)
            roles, assignee, priority, due = (
                given.roles,
                given.assignee,
                given.priority,
                given.due_at,
            )
        row = TaskRow(
            id=0,
            instance_id=work.instance.id,
            spiff_task_id=spiff_id,
            element_id=spec.bpmn_id,
            name=spec.bpmn_name,
            state=TaskState.OPEN,
            assignee=assignee,
            priority=priority,
            form_key=rule.form_key if rule else None,
            created_at=work.now,
            claimed_at=work.now if assignee else None,
            ended_at=None,
            completed_by=None,
            due_at=due,
            candidate_roles=",".join(roles),
        )
        work.writes.add_task(row, roles)
        work.created[row.id] = row
        task.internal_data[ROW] = row.id
        if due is not None:
            task.internal_data[DUE] = due.isoformat()
        work.open_rows[spiff_id] = (row.id, row.element_id, row.name)
        work.audit(
            EventKind.TASK_CREATED,
            element_id=row.element_id,
            element_name=row.name,
            role=row.audit_role or None,
            data={
                "task_id": row.id,
                "roles": roles,
                **({"assignee": assignee} if assignee else {}),
            },
        )


def breach_overdue(work: Work, ready: list[Task]) -> None:
    """Record each open task whose SLA has passed, once: mark the row, audit
    ``sla_breached``, and add the ``escalateTo`` roles to its queues."""
    for task in ready:
        due = task.internal_data.get(DUE)
        if due is None or task.internal_data.get(BREACHED) or ROW not in task.internal_data:
            continue
        if datetime.fromisoformat(due) > work.now:
            continue
        row_id = task.internal_data[ROW]
        row = work.tasks.get(row_id) or work.created.get(row_id) or store.task(work.conn, row_id)
        if row is None or row.state != TaskState.OPEN:
            continue
        row = work.task(row)
        task.internal_data[BREACHED] = True
        row.breached_at = work.now
        rule = work.definition.rule(task.workflow.spec.name, task.task_spec.bpmn_id)
        added = [r for r in (rule.escalate_to if rule else ()) if r not in row.role_ids]
        while added and len(",".join([*row.role_ids, *added])) > MAX_QUEUES:
            added.pop()  # the column holds so many; the first named come first
        if added:
            row.candidate_roles = ",".join([*row.role_ids, *added])
            work.writes.add_roles(row.id, added)
        work.audit(
            EventKind.SLA_BREACHED,
            element_id=row.element_id,
            element_name=row.name,
            role=row.audit_role or None,
            data={"task_id": row.id, "due": due, "escalated_to": added},
        )


def next_due(ready: list[Task]) -> datetime | None:
    """The earliest SLA due time not yet recorded as breached."""
    found = [
        datetime.fromisoformat(t.internal_data[DUE])
        for t in ready
        if DUE in t.internal_data and not t.internal_data.get(BREACHED)
    ]
    return min(found) if found else None

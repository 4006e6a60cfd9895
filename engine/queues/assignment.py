"""A user task's assignment evaluated when the task is created, as Camunda 7 does:
``camunda:assignee`` (the task starts assigned to that user), ``candidateUsers`` (each may
claim it), ``candidateGroups`` as an expression (role ids), ``priority`` and ``dueDate``
expressions. The expressions were read at deploy (engine/modeling/assignment.py); a value
that can't serve (a group that is no role id, a priority outside 0..100, a due date that
is no ISO 8601 date, time or duration) fails the command naming the element and the
attribute, as a failing condition does.

An assignee and candidate users are queues of one user (``people.candidate``) beside the
task's roles: the inbox, claiming and completing read them as they read roles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.task import Task

from engine.errors import ProcessFailed
from engine.people import ROLE_ID, candidate, users

__all__ = ["MAX_QUEUES", "Assigned", "assign"]

MAX_QUEUE = 160  # a queue id's column: "user:" and a user's name (at most 128)
MAX_QUEUES = 512  # a task's queues, comma-separated (human_task.candidate_roles)


@dataclass(frozen=True)
class Assigned:
    roles: list[str]  # role ids and candidate users' queues
    assignee: str | None
    priority: int
    due_at: datetime | None


def assign(
    task: Task, expressions: Mapping[str, str], roles: list[str], priority: int,
    due_at: datetime | None, now: datetime,
) -> Assigned:  # fmt: skip
    """The task's queues, assignee, priority and due time, its expressions evaluated over
    its data; ``roles``, ``priority`` and ``due_at`` are what its rules fixed at deploy."""
    element = task.task_spec.bpmn_id

    def value(attribute: str) -> Any:
        try:
            return task.workflow.script_engine.evaluate(task, expressions[attribute])
        except Exception as exc:
            raise ProcessFailed(f"element '{element}': camunda:{attribute}: {exc}") from exc

    def refuse(attribute: str, why: str) -> ProcessFailed:
        return ProcessFailed(f"element '{element}': camunda:{attribute} {why}")

    def listed(attribute: str, valid: Callable[[str], object], many: str, one: str) -> list[str]:
        names = _names(value(attribute))
        if names is None:
            raise refuse(attribute, f"must be {many}, as text or a list of text")
        if bad := [n for n in names if not valid(n)]:
            raise refuse(attribute, f"gave {bad[0][:80]!r}, which is no {one}")
        return names

    queues = list(roles)
    if "candidateGroups" in expressions:
        queues = listed("candidateGroups", ROLE_ID.match, "role ids", "role id")
    assignee = None
    if "assignee" in expressions:
        found = value("assignee")
        if found is not None and not isinstance(found, str):
            raise refuse("assignee", f"must be a user's name, not {type(found).__name__}")
        assignee = found.strip() if found and found.strip() else None
        if assignee is not None and not users.valid_name(assignee):
            raise refuse("assignee", f"gave {assignee[:80]!r}, which is no user's name")
    if "candidateUsers" in expressions:
        named = listed("candidateUsers", users.valid_name, "user names", "user's name")
        queues += [candidate(u) for u in named]
    if assignee is not None:
        queues.append(candidate(assignee))
    if "priority" in expressions:
        found = value("priority")
        if isinstance(found, bool) or not isinstance(found, int) or not 0 <= found <= 100:
            raise refuse("priority", f"gave {found!r}: a priority is a whole number 0..100")
        priority = found
    if "dueDate" in expressions:
        due_at = _due(value("dueDate"), now, lambda why: refuse("dueDate", why))
    queues = list(dict.fromkeys(queues))
    if not queues:
        raise refuse("candidateGroups", "gave no role, and no user is named: nobody could take "
                     "the task")  # fmt: skip
    if any(len(q) > MAX_QUEUE for q in queues) or len(",".join(queues)) > MAX_QUEUES:
        raise refuse("candidateUsers", f"names more users than a task can hold ({len(queues)})")
    return Assigned(queues, assignee, priority, due_at)


def _names(found: Any) -> list[str] | None:
    if found is None:
        return []
    if isinstance(found, str):
        return [n.strip() for n in found.split(",") if n.strip()]
    if isinstance(found, list | tuple) and all(isinstance(n, str) for n in found):
        return [n.strip() for n in found if n.strip()]
    return None


def _due(found: Any, now: datetime, refuse: Any) -> datetime | None:
    """An ISO 8601 date-time (without a zone: UTC), a date (its midnight, UTC) or a
    duration from now."""
    if found is None or found == "":
        return None
    if not isinstance(found, str):
        raise refuse(f"gave {found!r}: a due date is ISO 8601 text")
    text = found.strip()
    try:
        if text.startswith("P"):
            parsed = TimerEventDefinition.parse_iso_duration(text)
            later: datetime = now + TimerEventDefinition.get_timedelta_from_start(parsed, now)
            return later
        at = datetime.fromisoformat(text)
    except Exception as exc:  # Spiff's duration parser raises a bare Exception
        raise refuse(f"gave {text!r}, which is no ISO 8601 date, time or duration") from exc
    return at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)

"""Small helpers the blueprints share."""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy import select
from werkzeug.exceptions import BadRequest

from api.auth import reads_everything
from api.context import actor, flow
from api.schemas import INT_MAX
from engine.commands import reading
from engine.errors import Forbidden, NotInRole
from engine.storage import Form, Instance, TaskRow


def check_can_read(instance_id: int) -> Instance:
    """The instance, if the caller may read it. Auditors, admins and process owners read
    every instance; an employee, those in which one of their roles has a task and those
    they started. Unknown instances are 404 for everyone."""
    instance = flow().instance(instance_id)  # NotFound first
    who = actor()
    if reads_everything(who) or who.is_process_owner:
        return instance
    with flow().db.reading() as session:
        if not reading.readable_by(session, who, instance_id):
            raise Forbidden(f"{who.name} has no task in instance {instance_id}")
    return instance


def check_can_see_task(task: TaskRow) -> None:
    """A task is seen by those who read every instance, process owners (as for
    instances) and holders of one of its roles."""
    who = actor()
    if reads_everything(who) or who.is_process_owner or who.queues & set(task.role_ids):
        return
    raise NotInRole(f"{who.name} holds none of the roles of task {task.id}", task=task.id)


def latest_form(key: str | None) -> dict[str, Any] | None:
    """The schema of the latest version of a form (what a task's page renders)."""
    if not key:
        return None
    with flow().db.reading() as session:
        found: dict[str, Any] | None = session.scalar(
            select(Form.schema).where(Form.key == key).order_by(Form.version.desc()).limit(1)
        )
    return found


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        offset = int(value)
        if kind != "o" or not 0 <= offset <= INT_MAX:
            raise ValueError(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("the cursor is not one this API gave out") from exc
    return offset

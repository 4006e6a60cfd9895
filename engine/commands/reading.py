"""Reading instances: one by id with its tasks and variables, and searches by what a
person knows of an order (its status, process, business key, a customer's name), limited
to what the reader may see."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, joinedload

from engine import queues
from engine.errors import InstanceNotFound
from engine.execution import variables
from engine.people import Actor
from engine.runtime import Runtime
from engine.storage import (
    Definition,
    HumanTask,
    HumanTaskRole,
    Instance,
    InstanceStatus,
    StatePart,
    TaskRow,
    store,
)


def get(runtime: Runtime, instance_id: int) -> Instance:
    """The instance row with its definition (without the stored spec), for reading."""
    with runtime.db.reading() as session:
        return read(session, instance_id)


def read(session: Session, instance_id: int) -> Instance:
    """``get`` inside the caller's reading session."""
    instance = session.get(
        Instance,
        instance_id,
        options=[joinedload(Instance.definition).defer(Definition.spec_json)],
    )
    if instance is None:
        raise InstanceNotFound(f"no instance {instance_id}", instance=instance_id)
    return instance


def tasks_of(session: Session, instance_id: int, now: datetime) -> list[TaskRow]:
    """The instance's task rows, oldest first, each knowing its instance's business key
    and whether it is overdue at ``now``."""
    rows = store.tasks_of(session.connection(), instance_id)
    key = session.scalar(select(Instance.business_key).where(Instance.id == instance_id))
    for row in rows:
        row.business_key = key
    return queues.stamp_overdue(rows, now)


def current_variables(runtime: Runtime, instance_id: int) -> dict[str, Any]:
    with runtime.db.reading() as session:
        instance = session.get(Instance, instance_id)
        if instance is None:
            raise InstanceNotFound(f"no instance {instance_id}", instance=instance_id)
        return variables(runtime.load(session, instance))


@dataclass(frozen=True)
class InstanceQuery:
    status: InstanceStatus | None = None
    definition: str | None = None
    business_key: str | None = None
    business_key_prefix: str | None = None  # SO-2026- finds every 2026 order
    data_contains: str | None = None  # a customer's name, say, anywhere in the order's data
    started_from: datetime | None = None
    started_before: datetime | None = None
    limit: int = 50
    offset: int = 0


def _visible(actor: Actor) -> Any:
    """Instances where one of the actor's queues (roles, their own) has (or had) a task."""
    return Instance.id.in_(
        select(HumanTask.instance_id)
        .join(HumanTaskRole, HumanTaskRole.task_id == HumanTask.id)
        .where(HumanTaskRole.role_id.in_(actor.queues))
    )


def _state_contains(text: str) -> Any:
    """The text in an instance's saved state, however the state's JSON wrote it: as it is
    (orjson writes UTF-8) or escaped (json.dumps wrote "\u4e0a\u6d77" for 上海, and a
    quote or backslash in a value escaped in both)."""
    escaped = json.dumps(text)[1:-1]
    raw = json.dumps(text, ensure_ascii=False)[1:-1]
    forms = {raw, escaped}
    # a large variable is saved apart (a part, storage/state_parts.py)
    in_parts = (
        select(StatePart.instance_id)
        .where(
            StatePart.instance_id == Instance.id,
            or_(*(StatePart.body.contains(form, autoescape=True) for form in forms)),
        )
        .exists()
    )
    return or_(*(Instance.state.contains(form, autoescape=True) for form in forms), in_parts)


def search(
    session: Session, query: InstanceQuery, only_for: Actor | None = None
) -> tuple[list[Instance], int]:
    """Instances by status, definition key and business key, newest first.

    ``only_for``: just those the actor may read through their roles."""
    stmt = select(Instance).options(joinedload(Instance.definition).defer(Definition.spec_json))
    if query.status is not None:
        stmt = stmt.where(Instance.status == query.status)
    if query.definition is not None:
        stmt = stmt.where(
            Instance.definition_id.in_(
                select(Definition.id).where(Definition.key == query.definition)
            )
        )
    if query.business_key is not None:
        stmt = stmt.where(Instance.business_key == query.business_key)
    if query.business_key_prefix:
        prefix = query.business_key_prefix.replace("\\", "\\\\").replace("%", "\\%")
        prefix = prefix.replace("_", "\\_")
        stmt = stmt.where(Instance.business_key.like(prefix + "%", escape="\\"))
    if query.data_contains:
        stmt = stmt.where(_state_contains(query.data_contains))
    if query.started_from is not None:
        stmt = stmt.where(Instance.started_at >= query.started_from)
    if query.started_before is not None:
        stmt = stmt.where(Instance.started_at < query.started_before)
    if only_for is not None:
        stmt = stmt.where(_visible(only_for))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(Instance.id.desc()).limit(query.limit).offset(query.offset)
    ).all()
    return list(rows), total


def readable_by(session: Session, actor: Actor, instance_id: int) -> bool:
    """An employee may read an instance in which one of their roles has a task, and one
    they started themselves."""
    mine = Instance.started_by == actor.name
    return (
        session.scalar(
            select(Instance.id).where(Instance.id == instance_id, mine | _visible(actor))
        )
        is not None
    )

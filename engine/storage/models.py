"""The tables, as typed SQLAlchemy 2.0 models. Alembic migrations own the schema."""

from __future__ import annotations

import enum
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql import false, text
from sqlalchemy.types import TypeDecorator

JsonType = JSON().with_variant(JSONB(), "postgresql")
UtcDateTime = DateTime(timezone=True)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JsonType,
        list[Any]: JsonType,
        datetime: UtcDateTime,
    }


class CanonicalJson(TypeDecorator[Any]):
    """JSON kept as text exactly as the audit chain hashed it (sorted keys, no spaces).

    Text given is stored as is; anything else is encoded canonically. PostgreSQL queries
    read it with ``data::jsonb``."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return json.loads(value) if value is not None else None


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=24, values_callable=lambda e: [m.value for m in e])


class InstanceStatus(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class TaskState(enum.StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class MessageStatus(enum.StrEnum):
    BUFFERED = "buffered"
    DELIVERED = "delivered"
    EXPIRED = "expired"


class ResourceKind(enum.StrEnum):
    BPMN = "bpmn"
    DMN = "dmn"
    FORM = "form"


class Deployment(Base):
    __tablename__ = "deployment"
    id: Mapped[int] = mapped_column(primary_key=True)
    deployed_at: Mapped[datetime]
    deployed_by: Mapped[str] = mapped_column(String(128))


class Resource(Base):
    """A file exactly as deployed (.bpmn, .dmn, .form)."""

    __tablename__ = "resource"
    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployment.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[ResourceKind] = mapped_column(_enum(ResourceKind))
    content: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))


class Definition(Base):
    """One version of one process; the parsed spec is stored once, here."""

    __tablename__ = "definition"
    __table_args__ = (UniqueConstraint("key", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String(255))
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployment.id"))
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id"))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    spec_json: Mapped[str] = mapped_column(Text)
    messages: Mapped[list[Any]]  # names of the messages this process can catch
    # timer events (element ids) counting business time, of this process and those it calls
    business_timers: Mapped[list[Any]] = mapped_column(default=list)
    deployed_at: Mapped[datetime]
    tasks: Mapped[list[DefinitionTask]] = relationship(
        lazy="selectin", order_by="DefinitionTask.id"
    )


class Decision(Base):
    """One version of one decision (a DMN decision, by its id): business rule tasks bound
    to ``latest`` take the newest (engine/execution/decisions.py)."""

    __tablename__ = "decision"
    __table_args__ = (UniqueConstraint("key", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployment.id"))
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id"))
    sha256: Mapped[str] = mapped_column(String(64))
    deployed_at: Mapped[datetime]
    # deployed before decisions were read as DMN defines them (migration 0013): its cells
    # are read Python-style first and its UNIQUE answers the first match, as then
    legacy: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)


class DefinitionTask(Base):
    """What the engine needs to know about a user task, extracted once at deploy."""

    __tablename__ = "definition_task"
    __table_args__ = (UniqueConstraint("definition_id", "process_id", "element_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("definition.id"))
    process_id: Mapped[str] = mapped_column(String(255))
    element_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    roles: Mapped[list[Any]]
    form_key: Mapped[str | None] = mapped_column(String(255))
    separate_from: Mapped[list[Any]]
    priority: Mapped[int] = mapped_column(Integer, default=50)
    sla: Mapped[str | None] = mapped_column(String(64))
    properties: Mapped[dict[str, Any]]
    # camunda:assignee, candidateUsers, ... as expressions (engine/modeling/assignment.py)
    assignment: Mapped[dict[str, Any]] = mapped_column(server_default="{}")


class Form(Base):
    __tablename__ = "form"
    __table_args__ = (UniqueConstraint("key", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployment.id"))
    sha256: Mapped[str] = mapped_column(String(64))
    schema: Mapped[dict[str, Any]]


class StartTimer(Base):
    """A process that starts on a timer (start event with timeDate, timeDuration or
    timeCycle): when it next starts. Deploying a new version replaces its key's row."""

    __tablename__ = "start_timer"
    __table_args__ = (Index("ix_start_timer_due", "next_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    definition_key: Mapped[str] = mapped_column(String(255), unique=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("definition.id"))
    element_id: Mapped[str] = mapped_column(String(255))
    next_at: Mapped[datetime]
    cycles_left: Mapped[int] = mapped_column(Integer)  # -1: for ever
    every_seconds: Mapped[float | None] = mapped_column(Float)  # a cycle's period
    every_months: Mapped[int | None] = mapped_column(Integer)  # ... in calendar months


class Instance(Base):
    __tablename__ = "instance"
    __table_args__ = (Index("ix_instance_wakeup", "status", "next_wakeup_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("definition.id"), index=True)
    business_key: Mapped[str | None] = mapped_column(String(255), index=True)
    status: Mapped[InstanceStatus] = mapped_column(_enum(InstanceStatus))
    state: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime]
    started_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    next_wakeup_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    # bumped by every save: an in-process cache of live workflows is valid while it matches
    revision: Mapped[int] = mapped_column(Integer, default=0)
    # head of this instance's audit chain, kept here because the row is locked anyway
    audit_seq: Mapped[int] = mapped_column(Integer, default=0)
    audit_hash: Mapped[str] = mapped_column(String(64))
    # never loaded by the unit of work (it uses the definition cache); readers ask for it
    definition: Mapped[Definition] = relationship(lazy="raise_on_sql")


CANDIDATE = "user:"  # a queue of one user (an assignee, a candidate user) beside role ids


class TaskQueues:
    """What a task's ``candidate_roles`` (its queues, comma-separated) say: on the row
    (HumanTask) and on the unit of work's copy (store.TaskRow) alike."""

    if TYPE_CHECKING:
        candidate_roles: str

    @property
    def role_ids(self) -> list[str]:
        """The task's queues: role ids, and single users' queues (``user:NAME``)."""
        return [r for r in self.candidate_roles.split(",") if r]

    @property
    def roles_only(self) -> list[str]:
        return [r for r in self.role_ids if not r.startswith(CANDIDATE)]

    @property
    def candidate_users(self) -> list[str]:
        """Users named by the diagram: its assignee and candidate users."""
        return [r.removeprefix(CANDIDATE) for r in self.role_ids if r.startswith(CANDIDATE)]

    @property
    def audit_role(self) -> str:
        """The role ids as the trail's ``role`` column holds them (64 characters)."""
        return ",".join(self.roles_only)[:64]


class HumanTask(TaskQueues, Base):
    """A READY user task in one or more role queues."""

    __tablename__ = "human_task"
    __table_args__ = (
        Index("ix_human_task_assignee", "assignee", "state"),
        # the inbox's orders, so a page reads its first rows off an index (bench/inbox.py)
        Index(
            "ix_human_task_inbox_due",
            "state",
            text("(due_at IS NULL)"),
            "due_at",
            text("priority DESC"),
            "id",
        ),
        Index("ix_human_task_inbox_priority", "state", text("priority DESC"), "id"),
        Index("ix_human_task_state_assignee", "state", "assignee"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id"), index=True)
    spiff_task_id: Mapped[str] = mapped_column(String(36), unique=True)
    element_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[TaskState] = mapped_column(_enum(TaskState))
    assignee: Mapped[str | None] = mapped_column(String(128))
    priority: Mapped[int] = mapped_column(Integer, default=50)
    form_key: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None] = mapped_column(index=True)  # the measures' days
    completed_by: Mapped[str | None] = mapped_column(String(128))
    due_at: Mapped[datetime | None]
    breached_at: Mapped[datetime | None]  # when the SLA was found broken (once)
    # the candidate roles, comma-separated; human_task_role indexes them for the inbox
    candidate_roles: Mapped[str] = mapped_column(String(512))
    roles: Mapped[list[HumanTaskRole]] = relationship(lazy="raise_on_sql", cascade="all")


class HumanTaskRole(Base):
    __tablename__ = "human_task_role"
    __table_args__ = (Index("ix_human_task_role_role", "role_id", "task_id"),)
    task_id: Mapped[int] = mapped_column(ForeignKey("human_task.id"), primary_key=True)
    # a role id, or a single user's queue (people.candidate: an assignee, a candidate user)
    role_id: Mapped[str] = mapped_column(String(160), primary_key=True)


class Message(Base):
    """A message kept until an instance can take it, or until it expires."""

    __tablename__ = "message"
    __table_args__ = (
        Index("ix_message_pending", "status", "name"),
        # NULLs are distinct: messages sent without a key never collide
        Index("ux_message_sender_key", "sender", "idempotency_key", unique=True),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    business_key: Mapped[str | None] = mapped_column(String(255))
    correlation: Mapped[dict[str, Any]]
    payload: Mapped[dict[str, Any]]
    status: Mapped[MessageStatus] = mapped_column(_enum(MessageStatus))
    sender: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instance.id"))
    delivered_at: Mapped[datetime | None]
    # the sender's own key for this message (Idempotency-Key): a repeat finds this row
    idempotency_key: Mapped[str | None] = mapped_column(String(255))


class RequestKey(Base):
    """A sender's own key for a request that changed something (HTTP's Idempotency-Key)
    and the answer it got: a repeat gets that answer and changes nothing."""

    __tablename__ = "request_key"
    __table_args__ = (UniqueConstraint("sender", "key", name="ux_request_key_sender_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    sender: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(String(255))
    asked: Mapped[str] = mapped_column(String(64))  # a digest of what was asked
    status: Mapped[int] = mapped_column(Integer)
    answer: Mapped[str | None] = mapped_column(Text)  # the answer's JSON, as sent
    created_at: Mapped[datetime] = mapped_column(index=True)


class MessageSubscription(Base):
    """An instance waiting for a message by name (kept in step by every unit of work)."""

    __tablename__ = "message_subscription"
    __table_args__ = (Index("ix_message_subscription_name", "name", "instance_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    business_key: Mapped[str | None] = mapped_column(String(255))


class StatePart(Base):
    """A large variable of an instance's saved state, kept apart under its content's
    hash (execution/serialization.py): a save writes the parts it did not write before
    and deletes those its state no longer refers to, so an unchanged order of 1,500
    lines is not written again at every step."""

    __tablename__ = "state_part"
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    body: Mapped[str] = mapped_column(Text)


class SubscriptionKey(Base):
    """A variable of an instance waiting for a message, as correlation compares it: a
    message correlated by values finds its instance through these rows (the index on
    name and value), not by loading waiting workflows. Kept in step by every unit of
    work that saves a waiting instance; none for an instance that waits for nothing."""

    __tablename__ = "subscription_key"
    __table_args__ = (Index("ix_subscription_key_value", "name", "value", "instance_id"),)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))

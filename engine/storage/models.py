"""The tables, as typed SQLAlchemy 2.0 models. Alembic migrations own the schema."""

from __future__ import annotations

import enum
import json
from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql import text
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


class Role(Base):
    __tablename__ = "role"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime]


class User(Base):
    __tablename__ = "app_user"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_process_owner: Mapped[bool] = mapped_column(Boolean, default=False)
    is_auditor: Mapped[bool] = mapped_column(Boolean, default=False)
    is_integration: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    password_hash: Mapped[str | None] = mapped_column(String(255))  # argon2; None: no sign-in
    locale: Mapped[str | None] = mapped_column(String(8))  # the pages' language: zh, en
    disabled_at: Mapped[datetime | None]  # set: no token, session or password works
    roles: Mapped[list[Role]] = relationship(secondary="user_role", lazy="selectin")

    @property
    def role_ids(self) -> set[str]:
        return {r.id for r in self.roles}


class UserRole(Base):
    __tablename__ = "user_role"
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), primary_key=True)
    role_id: Mapped[str] = mapped_column(ForeignKey("role.id"), primary_key=True)


class ApiToken(Base):
    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class WebSession(Base):
    """A signed-in browser. The cookie carries a random token; only its SHA-256 is kept,
    so ending the row (logout, revoke, disable) ends the session wherever it was copied."""

    __tablename__ = "web_session"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    address: Mapped[str | None] = mapped_column(String(64))  # where it signed in from


class SignInFailure(Base):
    """Failed sign-ins counted per key (``account:NAME`` or ``address:IP``) in a window."""

    __tablename__ = "sign_in_failure"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    first_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]


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


class HumanTask(Base):
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

    @property
    def role_ids(self) -> list[str]:
        return [r for r in self.candidate_roles.split(",") if r]


class HumanTaskRole(Base):
    __tablename__ = "human_task_role"
    __table_args__ = (Index("ix_human_task_role_role", "role_id", "task_id"),)
    task_id: Mapped[int] = mapped_column(ForeignKey("human_task.id"), primary_key=True)
    role_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class Message(Base):
    """A message kept until an instance can take it, or until it expires."""

    __tablename__ = "message"
    __table_args__ = (Index("ix_message_pending", "status", "name"),)
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


class MessageSubscription(Base):
    """An instance waiting for a message by name (kept in step by every unit of work)."""

    __tablename__ = "message_subscription"
    __table_args__ = (Index("ix_message_subscription_name", "name", "instance_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    business_key: Mapped[str | None] = mapped_column(String(255))


class AuditEvent(Base):
    """Append-only, hash-chained per stream; database triggers refuse UPDATE and DELETE."""

    __tablename__ = "audit_event"
    __table_args__ = (UniqueConstraint("stream", "seq"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    stream: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instance.id"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32), index=True)
    element_id: Mapped[str | None] = mapped_column(String(255))
    element_name: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(CanonicalJson)  # stored as it was hashed
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The head of a stream that has no instance row to carry it (``definitions``,
    ``messages``, ``sign-in``), written with the stream's events: verify compares the
    chain's end with it. Triggers let it only move forward; the anchors are what make that
    hold."""

    __tablename__ = "audit_head"
    __table_args__ = ({"sqlite_with_rowid": False},)  # no rowid a REPLACE could aim at
    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class AuditAnchor(Base):
    """One row: the last anchor written outside the database (engine/audit/anchors.py), and
    the claim of the process writing the next one."""

    __tablename__ = "audit_anchor"
    id: Mapped[int] = mapped_column(primary_key=True)  # always 1
    made: Mapped[int] = mapped_column(Integer)  # anchors written so far
    anchored_at: Mapped[datetime | None]
    digest: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None]


class AuditAnchored(Base):
    """The heads as the last anchor listed them: the next anchor lists what moved."""

    __tablename__ = "audit_anchored"
    __table_args__ = ({"sqlite_with_rowid": False},)
    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class CaseFacts(Base):
    """One row per instance: when it reached each milestone the department measures, and
    the few answers the measures need (engine/reporting/facts.py). Kept by the unit of work from the
    audit events it writes, in the same transaction; rebuilt from the trail at will."""

    __tablename__ = "case_facts"
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id"), primary_key=True)
    definition_key: Mapped[str] = mapped_column(String(255), index=True)
    business_key: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime]
    owner: Mapped[str | None] = mapped_column(String(128))  # who took the inquiry or lead
    grade: Mapped[str | None] = mapped_column(String(16))  # the customer's grade
    quoted_at: Mapped[datetime | None]
    quote_sent_at: Mapped[datetime | None]
    signed_at: Mapped[datetime | None]
    promised_date: Mapped[str | None] = mapped_column(String(32))  # delivery date, as agreed
    shipped_at: Mapped[datetime | None]
    reviewed_at: Mapped[datetime | None]  # the documents' first review
    documents_first_pass: Mapped[bool | None] = mapped_column(Boolean)
    invoiced_at: Mapped[datetime | None]
    overdue_at: Mapped[datetime | None]  # payment due date passed unpaid
    paid_at: Mapped[datetime | None]
    collection_outcome: Mapped[str | None] = mapped_column(String(32))
    surveyed_at: Mapped[datetime | None]
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    complaint: Mapped[bool | None] = mapped_column(Boolean)
    customer_recorded_at: Mapped[datetime | None]


class StepWeek(Base):
    """The tasks that ended in one week (Monday to Monday, UTC), summed per step and slice:
    what the step measures read instead of every task row (engine/reporting/rollups.py). A week is
    summed once it is over, when no more of its tasks can end."""

    __tablename__ = "step_week"
    __table_args__ = (
        UniqueConstraint("week", "definition_key", "element_id", "roles", "user_name", "grade"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    week: Mapped[date] = mapped_column(Date)  # its Monday
    definition_key: Mapped[str] = mapped_column(String(255))
    element_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    roles: Mapped[str] = mapped_column(String(512))  # the candidate roles, as on the task
    user_name: Mapped[str] = mapped_column(String(128))  # who completed ('' if cancelled)
    grade: Mapped[str] = mapped_column(String(16))  # the customer's ('' if none)
    ended: Mapped[int] = mapped_column(Integer)
    completed: Mapped[int] = mapped_column(Integer)
    reworked: Mapped[int] = mapped_column(Integer)  # a step's second or later occurrence
    limited: Mapped[int] = mapped_column(Integer)  # completed, with a time limit
    met: Mapped[int] = mapped_column(Integer)  # ... and within it
    late: Mapped[int] = mapped_column(Integer)  # ended past the limit
    # seconds, created -> claimed and claimed -> completed, of the completed tasks: sorted
    # little-endian doubles (engine/reporting/rollups.py: read back without parsing)
    waits: Mapped[bytes] = mapped_column(LargeBinary)
    works: Mapped[bytes] = mapped_column(LargeBinary)


class SummaryMark(Base):
    """How far a summary has been made: what ended before ``until`` is summed."""

    __tablename__ = "summary_mark"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    until: Mapped[date] = mapped_column(Date)

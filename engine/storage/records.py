"""The tables of what happened: the audit trail, its heads and anchors, and the
measures' summary rows (case facts, weekly roll-ups)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from engine.storage.models import Base, CanonicalJson


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

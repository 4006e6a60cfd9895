"""Storage: the database and its transactions (``db``), the tables (``models``), the
migrations that build them (``schema``, ``migrations/``), and the unit of work's
prepared statements (``store``). It is the floor of the house: it imports nothing from
the other rooms, only ``engine.errors``; everything above reaches the database through
the names listed here.
"""

from engine.storage import schema, store
from engine.storage.accounts import (
    ApiToken,
    Role,
    SignInFailure,
    User,
    UserRole,
    WebSession,
)
from engine.storage.db import Database, Prepared, make_engine
from engine.storage.models import (
    Base,
    Definition,
    DefinitionTask,
    Deployment,
    Form,
    HumanTask,
    HumanTaskRole,
    Instance,
    InstanceStatus,
    Message,
    MessageStatus,
    MessageSubscription,
    Resource,
    ResourceKind,
    StartTimer,
    TaskState,
)
from engine.storage.records import (
    AuditAnchor,
    AuditAnchored,
    AuditEvent,
    AuditHead,
    CaseFacts,
    StepWeek,
    SummaryMark,
)
from engine.storage.schema import upgrade
from engine.storage.store import InstanceRow, TaskRow

__all__ = [
    "ApiToken",
    "AuditAnchor",
    "AuditAnchored",
    "AuditEvent",
    "AuditHead",
    "Base",
    "CaseFacts",
    "Database",
    "Definition",
    "DefinitionTask",
    "Deployment",
    "Form",
    "HumanTask",
    "HumanTaskRole",
    "Instance",
    "InstanceRow",
    "InstanceStatus",
    "Message",
    "MessageStatus",
    "MessageSubscription",
    "Prepared",
    "Resource",
    "ResourceKind",
    "Role",
    "SignInFailure",
    "StartTimer",
    "StepWeek",
    "SummaryMark",
    "TaskRow",
    "TaskState",
    "User",
    "UserRole",
    "WebSession",
    "make_engine",
    "schema",
    "store",
    "upgrade",
]

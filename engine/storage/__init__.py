"""Storage: the database and its transactions (``db``), the tables (``models``,
``accounts``, ``records``), the migrations that build them (``schema``, ``migrations/``),
the unit of work's prepared statements (``prepared``, ``store``) and its pending writes
(``Writes``), the large variables of saved states kept apart (``state_parts``), what
waiting instances wait for (``subscriptions``), what differs between
SQLite and PostgreSQL (``locks``, ``timesql``), and how long anything waits on the
database and what a wait that ran out means (``faults``). It is the floor of the house:
it imports nothing from the other rooms, only ``engine.errors``; everything above reaches
the database through the names listed here, and none of it asks which database it is.
"""

from engine.storage import faults, locks, schema, state_parts, store, subscriptions
from engine.storage.accounts import (
    ApiToken,
    Role,
    SignInFailure,
    User,
    UserRole,
    WebSession,
)
from engine.storage.db import Database, make_engine
from engine.storage.models import (
    CANDIDATE,
    Base,
    Decision,
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
    RequestKey,
    Resource,
    ResourceKind,
    StartTimer,
    StatePart,
    SubscriptionKey,
    TaskState,
)
from engine.storage.prepared import Prepared
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
from engine.storage.timesql import epoch
from engine.storage.writes import CaseChange, Writes

__all__ = [
    "CANDIDATE",
    "ApiToken",
    "AuditAnchor",
    "AuditAnchored",
    "AuditEvent",
    "AuditHead",
    "Base",
    "CaseChange",
    "CaseFacts",
    "Database",
    "Decision",
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
    "RequestKey",
    "Resource",
    "ResourceKind",
    "Role",
    "SignInFailure",
    "StartTimer",
    "StatePart",
    "StepWeek",
    "SubscriptionKey",
    "SummaryMark",
    "TaskRow",
    "TaskState",
    "User",
    "UserRole",
    "WebSession",
    "Writes",
    "epoch",
    "faults",
    "locks",
    "make_engine",
    "schema",
    "state_parts",
    "store",
    "subscriptions",
    "upgrade",
]

"""The audit trail: every change recorded as an event, hash-chained per stream
(``trail``); checking the chains against the recorded heads (``verification``); the heads
written outside the database (``anchors``, ``anchor_log``); and the trail exported as CSV
or XES (``export``). It imports ``engine.storage`` and ``engine.reporting`` (writing the
trail keeps the case facts); the unit of work, the commands, deployment and sign-in
write through ``AuditTrail``.
"""

from engine.audit import anchor_log, anchors, export, verification
from engine.audit.trail import (
    DEFINITIONS_STREAM,
    GENESIS,
    MESSAGES_STREAM,
    SIGN_IN_STREAM,
    TABLE,
    AuditQuery,
    AuditTrail,
    EventKind,
    instance_stream,
    search,
)

__all__ = [
    "DEFINITIONS_STREAM",
    "GENESIS",
    "MESSAGES_STREAM",
    "SIGN_IN_STREAM",
    "TABLE",
    "AuditQuery",
    "AuditTrail",
    "EventKind",
    "anchor_log",
    "anchors",
    "export",
    "instance_stream",
    "search",
    "verification",
]

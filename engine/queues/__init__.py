"""Role queues. The write side (``routing``): as a unit settles, READY user tasks become
rows in their roles' queues, message subscriptions follow what the workflow waits for,
and SLAs that passed are recorded and escalated. The read side (``inbox``): the open
tasks a user may work, and the count per queue. It imports ``engine.storage``,
``engine.audit``, ``engine.people``, ``engine.modeling`` and ``engine.execution`` (the
frontier).
"""

from engine.queues.inbox import (
    ClaimFilter,
    InboxPage,
    InboxQuery,
    QueueCount,
    counts,
    inbox,
    is_overdue,
    stamp_overdue,
)
from engine.queues.routing import ROW, breach_overdue, next_due, reconcile

__all__ = [
    "ROW",
    "ClaimFilter",
    "InboxPage",
    "InboxQuery",
    "QueueCount",
    "breach_overdue",
    "counts",
    "inbox",
    "is_overdue",
    "next_due",
    "reconcile",
    "stamp_overdue",
]

"""Role queues: READY user tasks become rows in their roles' queues (``routing``), and
the inbox reads them.

The runtime settles through routing, which uses the runtime's frontier: the two packages
import each other. The runtime takes this package as a module (``queues.reconcile``), so
whichever is imported first, the other finds what it needs.
"""

from engine.queues.routing import (
    ROW,
    ClaimFilter,
    InboxPage,
    InboxQuery,
    QueueCount,
    breach_overdue,
    counts,
    inbox,
    is_overdue,
    next_due,
    reconcile,
)

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
]

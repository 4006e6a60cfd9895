"""Reporting: what the department measures. Case facts (one row per instance: when it
reached each milestone, the few answers the measures read), weekly roll-ups of the steps
that ended, and the measures and waiting places read from them (``analytics``). The unit
of work keeps facts and roll-ups in the transactions that write the trail, so nothing
here replays it. Which elements are milestones is content (``TRADEFLOW_MILESTONES``,
trade/milestones.py), checked when the engine starts. It imports only ``engine.storage``,
the clock and the errors; the audit trail, the scheduler and deployment (its warnings)
call into it.
"""

from engine.reporting import analytics, facts, rollups

__all__ = ["analytics", "facts", "rollups"]

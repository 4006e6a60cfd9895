"""What the scheduler does besides timers, once a minute: the daily summaries of the
step measures as days close, and dropping requests' keys past their time. (Expiring and
handing over kept messages is engine/commands/messages.py's.)"""

from __future__ import annotations

import time
from collections.abc import Callable

from engine.reporting import rollups
from engine.runtime import Runtime, repeats


def sum_days(runtime: Runtime) -> None:
    """The step measures' daily summaries, as days close (engine/reporting/rollups.py)."""
    with runtime.db.transaction() as session:
        rollups.roll_up(session.connection(), runtime.clock.now())


def forget_keys(
    runtime: Runtime, stopping: Callable[[], bool] = lambda: False, seconds: float = 1.0
) -> None:
    """Requests' keys past the time they answer for (engine/runtime/repeats.py): a batch
    per transaction, for about ``seconds``, so no writer waits long for it."""
    began = time.monotonic()
    while time.monotonic() - began < seconds and not stopping():
        with runtime.db.transaction() as session:
            gone = repeats.forget(session, runtime.clock.now() - repeats.KEPT)
        if gone < repeats.FORGET_BATCH:
            return

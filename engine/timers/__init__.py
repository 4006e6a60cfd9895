"""Timers: the business calendar that counts SLAs and timers in working time
(``calendar``), the processes that start on a timer (``start_timers``), and the scheduler
that fires what is due, exactly once, across processes (``scheduler``), with the
minute's housekeeping beside it (``housekeeping``). It imports ``engine.storage`` and
``engine.execution`` (the evaluator and limits). The scheduler and its housekeeping stand
above the runtime (they run commands), so they are not loaded here: import
``engine.timers.scheduler``; everything else here sits beneath the runtime.
"""

from engine.timers import start_timers
from engine.timers.calendar import BusinessCalendar, load_calendar

__all__ = ["BusinessCalendar", "load_calendar", "start_timers"]

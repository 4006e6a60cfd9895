"""Timers: the business calendar that counts SLAs and timers in working time
(``calendar``), the processes that start on a timer (``start_timers``), and the scheduler
that fires what is due, exactly once, across processes (``scheduler``). It imports
``engine.storage`` and the runtime's evaluator and limits; the scheduler, above the
commands it fires, imports those too.

The scheduler is not loaded here: it runs commands, and the runtime and modeling, which
the commands use, read the calendar and the start timers from this package. The serve
and worker commands import ``engine.timers.scheduler`` themselves. The start timers use
the runtime, which imports this package back for the calendar, so the calendar comes
first.
"""

from engine.timers.calendar import BusinessCalendar, load_calendar

# isort: split
from engine.timers import start_timers

__all__ = ["BusinessCalendar", "load_calendar", "start_timers"]

"""Timers: the business calendar that counts SLAs and timers in working time
(``calendar``), the processes that start on a timer (``start_timers``), and the scheduler
that fires what is due, exactly once, across processes (``scheduler``). It imports
``engine.storage`` and the runtime's evaluator and limits; the scheduler imports the
commands it fires, and so is not loaded here: import ``engine.timers.scheduler``.
"""

# The runtime and modeling read the calendar and the start timers from here, and the
# commands use them: loading the scheduler here would make every reader of the calendar
# import the commands. The start timers use the runtime, which imports this package back
# for the calendar, so the calendar loads first.
from engine.timers.calendar import BusinessCalendar, load_calendar

# isort: split
from engine.timers import start_timers

__all__ = ["BusinessCalendar", "load_calendar", "start_timers"]

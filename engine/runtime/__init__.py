"""The runtime: the unit of work (``Runtime``, ``Unit``), the command's data (``Work``),
settling, running the engine on the command's budget (``stepping``), handing kept
messages over (``delivery``), a request's answer kept with its key (``repeats``), the
caches of definitions and live workflows, and the metrics. It stands on
``engine.execution`` (what runs one workflow), ``engine.storage`` and ``engine.audit``,
and settles through the rooms beneath it: ``engine.modeling`` (what an element waits
for, the rules of a definition), ``engine.queues`` (routing) and ``engine.timers`` (the
business calendar). The commands and the scheduler use it; nothing
beneath it imports it.
"""

from engine.runtime import delivery, metrics, repeats, stepping
from engine.runtime.caches import DefinitionInfo, LiveWorkflows
from engine.runtime.unit import Runtime, Unit
from engine.runtime.work import Work

__all__ = [
    "DefinitionInfo",
    "LiveWorkflows",
    "Runtime",
    "Unit",
    "Work",
    "delivery",
    "metrics",
    "repeats",
    "stepping",
]

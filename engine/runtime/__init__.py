"""The runtime: the unit of work (``Runtime``, ``Unit``) and what it needs to run a
workflow: the command's data (``Work``), settling, running the engine on a budget
(``stepping``, ``limits``), the safe expression evaluator, serialization, the caches,
task-tree compaction, the frontier, handing kept messages over (``delivery``) and the
metrics. It imports ``engine.storage`` and ``engine.audit``, and the rooms a command
settles through: ``engine.modeling`` (what an element waits for), ``engine.queues``
(routing) and ``engine.timers`` (the business calendar). The commands and the scheduler
use it; nothing in it imports them.
"""

# Modeling, queues and timers use these building blocks while the runtime settles through
# them, so those packages and this one import each other. The modules that need no other
# room load first; whichever package a program imports first, the other then finds what
# it takes from this one. settle and unit take engine.queues as a module, not its names.
from engine.runtime import metrics, stepping
from engine.runtime.compaction import elements
from engine.runtime.expressions import check_expression, check_script, evaluate_expression
from engine.runtime.frontier import Frontier, scan, variables
from engine.runtime.limits import TIMER_VAR, Limits, cycle_too_fast
from engine.runtime.serialization import SAFE_ENGINE, StateSerializer
from engine.runtime.work import Work

# isort: split
# the modules that reach into other rooms
from engine.runtime import delivery
from engine.runtime.caches import LiveWorkflows
from engine.runtime.unit import Runtime, Unit

__all__ = [
    "SAFE_ENGINE",
    "TIMER_VAR",
    "Frontier",
    "Limits",
    "LiveWorkflows",
    "Runtime",
    "StateSerializer",
    "Unit",
    "Work",
    "check_expression",
    "check_script",
    "cycle_too_fast",
    "delivery",
    "elements",
    "evaluate_expression",
    "metrics",
    "scan",
    "stepping",
    "variables",
]

"""The runtime: the unit of work (``Runtime``, ``Unit``) and what it needs to run a
workflow: the command's data (``Work``), settling, running the engine on a budget
(``stepping``, ``limits``), the safe expression evaluator, serialization, the caches,
task-tree compaction, the frontier, handing over messages (``delivery``) and the metrics.
It imports ``engine.storage``, ``engine.audit``, and the rooms a command settles
through: ``engine.modeling`` (what an element waits for), ``engine.queues`` (routing)
and ``engine.timers`` (the business calendar); the commands and the scheduler use it.

Those three rooms use the runtime's own building blocks (the evaluator, the limits, the
frontier), so they and this package import each other. The modules below that need no
other room are imported first, and ``settle`` and ``unit`` take ``engine.queues`` as a
module, not its names: whichever of the two packages is imported first, the other finds
what it needs already there.
"""

from engine.runtime import metrics, stepping
from engine.runtime.compaction import elements
from engine.runtime.expressions import check_expression, check_script, evaluate_expression
from engine.runtime.frontier import Frontier, scan, variables
from engine.runtime.limits import TIMER_VAR, Limits, cycle_too_fast
from engine.runtime.serialization import SAFE_ENGINE, StateSerializer
from engine.runtime.work import Work

# isort: split
# the modules that reach into other rooms, after what those rooms take from this one
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

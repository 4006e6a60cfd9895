"""Execution: what runs one workflow, beneath every room that runs one: the restricted
expression evaluator (``expressions``, with the functions JUEL and FEEL become:
``translated``), what one command may spend (``limits``: the budget), the workflow's
serialization onto a cached spec with the safe script engine attached
(``serialization``), one pass over the task tree collecting what a command asks of it
(``frontier``), dropping finished tasks (``compaction``), variables' values as message
correlation compares them (``correlation``), and the spec an untyped task runs as
(``pass_through``); business rule tasks that take the newest version of their decision
(``decisions``), evaluating it under its hit policy (``decision_tables``). It imports
only SpiffWorkflow and ``engine.errors``: modeling (lint checks expressions and cycles),
queues (routing reads the frontier), timers and the unit of work all stand on it.
"""

from engine.execution import decision_tables, decisions, limits
from engine.execution.compaction import SPIFF_MAX_DEPTH, compact, elements
from engine.execution.correlation import KEY_MAX, correlation_key, correlation_keys
from engine.execution.expressions import (
    FUNCTION_NAMES,
    check_expression,
    check_script,
    evaluate_expression,
)
from engine.execution.frontier import Frontier, scan, variables
from engine.execution.limits import TIMER_VAR, Budget, Limits, cycle_too_fast
from engine.execution.pass_through import PassThroughTask
from engine.execution.serialization import (
    SAFE_ENGINE,
    PartMissing,
    SpecPair,
    StateSerializer,
    has_parts,
    join_parts,
    mark_stored,
    stored_parts,
)

__all__ = [
    "FUNCTION_NAMES",
    "KEY_MAX",
    "SAFE_ENGINE",
    "SPIFF_MAX_DEPTH",
    "TIMER_VAR",
    "Budget",
    "Frontier",
    "Limits",
    "PartMissing",
    "PassThroughTask",
    "SpecPair",
    "StateSerializer",
    "check_expression",
    "check_script",
    "compact",
    "correlation_key",
    "correlation_keys",
    "cycle_too_fast",
    "decision_tables",
    "decisions",
    "elements",
    "evaluate_expression",
    "has_parts",
    "join_parts",
    "limits",
    "mark_stored",
    "scan",
    "stored_parts",
    "variables",
]

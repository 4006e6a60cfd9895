"""Running the engine inside a command: on the command's budget, with diagram errors
turned into ProcessFailed, so a broken diagram fails its instance instead of the service."""

from __future__ import annotations

from collections.abc import Callable

from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.task import Task

from engine.errors import ExpressionRefused, ProcessFailed
from engine.execution import decisions, limits
from engine.runtime.work import Work


def run(work: Work, step: Callable[[], object] | None = None) -> None:
    """Run ``step`` then the engine on the command's budget; a diagram error becomes
    ProcessFailed, a budget spent BudgetExceeded (however Spiff wrapped it)."""
    budget = work.budget
    if work.stored_cycles:
        for task in work.stored_cycles:
            check_cycle(task, budget.limits.min_timer_interval)
        work.stored_cycles = []
    token = limits.enter(budget)
    try:
        with decisions.source(work.decisions):
            if step is not None:
                step()
            work.workflow.do_engine_steps(will_complete_task=budget.step)
        budget.check_clock()  # raises if something swallowed the budget's error
    except Exception as exc:
        if budget.exceeded is not None:  # Spiff may have wrapped it, or a later error hid it
            raise budget.exceeded from None
        failure = _failure(exc, work.instance.id)
        if failure is exc:
            raise
        raise failure from exc
    finally:
        limits.leave(token)


def check_cycle(task: Task, min_interval: float) -> None:
    """A waiting timer cycle must not repeat more often than ``min_interval`` seconds."""
    value = task.internal_data.get("event_value")
    every = value.get("duration") if isinstance(value, dict) else None
    if isinstance(every, int | float) and every < min_interval and value.get("cycles") != 0:
        spec = task.task_spec
        raise ProcessFailed(
            f"element '{spec.bpmn_id or spec.name}': timer cycle "
            f"{limits.cycle_too_fast(every, min_interval)}"
        )


def _failure(exc: Exception, instance_id: int) -> Exception:
    """What a failed engine run raises: diagram errors become ProcessFailed."""
    if isinstance(exc, ProcessFailed):
        return exc
    if isinstance(exc, (SpiffWorkflowException, ExpressionRefused)):
        return ProcessFailed(_describe(exc), instance=instance_id)
    if isinstance(exc, (ArithmeticError, LookupError, TypeError, ValueError, NameError)):
        return ProcessFailed(f"{type(exc).__name__}: {exc}", instance=instance_id)
    if isinstance(exc, RecursionError):  # Spiff walks some ancestor chains recursively
        why = f"the task tree is too deep for the engine ({exc})"
        return ProcessFailed(why, instance=instance_id)
    return exc


def _describe(exc: Exception) -> str:
    task = getattr(exc, "task", None)
    element = getattr(getattr(task, "task_spec", None), "bpmn_id", None)
    message = getattr(exc, "error", None) or str(exc)
    return f"element '{element}': {message}" if element else str(message)

"""What one command may spend, and how fast a timer may repeat.

A diagram can hang or flood the service only by running without a wait state: a process
calling itself, a loop through gateways or a standard loop whose condition stays true, an
expression that computes for minutes, data built until the worker runs out of memory, a
timer cycle of a millisecond. Deploy-time lint refuses what it can see (engine/modeling/lint.py);
everything else runs on a budget. Every command (a start, a completion, a message, a
timer fired by the scheduler) gets one ``Budget`` of engine steps, seconds and data built
by expressions. Spending past it raises ``BudgetExceeded``, which names the element that
was running: the unit of work rolls back, an API caller gets a 422, and the scheduler
marks a background step's instance failed (an incident) and goes on.

The limits come from the environment (docs/limits.md lists them), read when a runtime is
made. The checks are cheap on purpose: a counter per engine step, and a look at the clock
per step and every ``CLOCK_EVERY`` nodes an expression evaluates.
"""

from __future__ import annotations

import os
import time
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from engine.errors import BudgetExceeded

STEPS_VAR = "TRADEFLOW_COMMAND_MAX_STEPS"
SECONDS_VAR = "TRADEFLOW_COMMAND_MAX_SECONDS"
BUILT_VAR = "TRADEFLOW_COMMAND_MAX_BUILT"
TIMER_VAR = "TRADEFLOW_MIN_TIMER_INTERVAL"

# nodes an expression evaluates between two looks at the clock: reading the thread's
# CPU clock costs about as much as evaluating a node (docs/performance.md)
CLOCK_EVERY = 100


def _number(name: str, default: float, *, whole: bool = False) -> Any:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        raise ValueError(
            f"{name} must be a {'whole ' if whole else ''}number, not {text!r}"
        ) from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, not {text!r}")
    return value


def _interval(name: str, default: float) -> float:
    """Seconds, given as a number (``60``) or an ISO 8601 duration (``PT1M``)."""
    text = os.environ.get(name, "").strip()
    if text.upper().startswith("P"):
        from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

        try:
            parsed = TimerEventDefinition.parse_iso_duration(text)
            return float(TimerEventDefinition.get_timedelta_from_start(parsed).total_seconds())
        except Exception as exc:  # Spiff raises a bare Exception on bad text
            raise ValueError(f"{name}: {text!r} is not an ISO 8601 duration") from exc
    return float(_number(name, default))


@dataclass(frozen=True)
class Limits:
    """The limits in force. The defaults leave the shipped processes a wide margin: their
    busiest command runs a few dozen steps in a few milliseconds."""

    max_steps: int = 1_000  # tasks the engine runs in one command
    max_seconds: float = 5.0  # CPU time of one command's engine steps and expressions
    max_built: int = 5_000_000  # items and characters expressions build in one command
    min_timer_interval: float = 60.0  # seconds between two rounds of a timer cycle

    @classmethod
    def from_env(cls) -> Limits:
        """The limits, each from its environment variable where it is set."""
        return cls(
            max_steps=_number(STEPS_VAR, cls.max_steps, whole=True),
            max_seconds=_number(SECONDS_VAR, cls.max_seconds),
            max_built=_number(BUILT_VAR, cls.max_built, whole=True),
            min_timer_interval=_interval(TIMER_VAR, cls.min_timer_interval),
        )


def cycle_too_fast(every: float, min_interval: float) -> str:
    """Why a timer cycle is refused (deploy) or stopped (run time)."""
    return (
        f"repeats every {every:g} s, more often than the minimum interval of "
        f"{min_interval:g} s ({TIMER_VAR}): use a longer cycle, or a timeDuration for a "
        "single delay"
    )


class Budget:
    """What one command has left. Once exceeded it stays exceeded: whatever wrapped or
    swallowed the error on its way out (SpiffWorkflow wraps what a task raises), the next
    check and the unit of work raise it again."""

    __slots__ = ("built_left", "deadline", "element", "exceeded", "limits", "steps_left")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.steps_left = limits.max_steps
        self.built_left = limits.max_built
        # CPU time of this thread, not the wall clock: what the command itself spends,
        # which neither a loaded machine nor other threads waiting for the GIL inflate
        # (a busy machine must not fail a timer's instance that did nothing wrong)
        self.deadline = time.thread_time() + limits.max_seconds
        self.element: str | None = None  # the element running now, for the error
        self.exceeded: BudgetExceeded | None = None

    def step(self, task: Any) -> None:
        """SpiffWorkflow's ``will_complete_task`` hook: one more engine step."""
        self.element = task.task_spec.bpmn_id or task.task_spec.name
        self.steps_left -= 1
        if self.steps_left < 0:
            self._exceed(
                "steps",
                f"ran {self.limits.max_steps:,} engine steps without reaching a wait state "
                "(a user task, a message, a timer): a loop that never waits? "
                f"({STEPS_VAR})",
            )
        self.check_clock()

    def check_clock(self) -> None:
        """Raise if the command has run out of time (or out of anything before)."""
        if self.exceeded is not None:
            raise self.exceeded
        if time.thread_time() > self.deadline:
            self._exceed(
                "seconds",
                f"ran longer than {self.limits.max_seconds:g} s of CPU ({SECONDS_VAR})",
            )

    def charge(self, built: int) -> None:
        """Count ``built`` items and characters an expression made."""
        self.built_left -= built
        if self.built_left < 0:
            self._exceed(
                "built",
                f"built more than {self.limits.max_built:,} items and characters of data "
                f"in expressions ({BUILT_VAR})",
            )

    def _exceed(self, budget: str, what: str) -> None:
        where = f"element '{self.element}': " if self.element else ""
        self.exceeded = BudgetExceeded(
            f"{where}the command {what}; it was stopped and nothing was changed",
            budget=budget,
            element=self.element,
        )
        raise self.exceeded


_current: ContextVar[Budget | None] = ContextVar("tradeflow_budget", default=None)


def current() -> Budget | None:
    """The budget of the command running in this thread, if any."""
    return _current.get()


def enter(budget: Budget) -> Token[Budget | None]:
    """Make ``budget`` the one expressions in this thread charge, until ``leave``."""
    return _current.set(budget)


def leave(token: Token[Budget | None]) -> None:
    _current.reset(token)

"""Domain errors of the process runtime.

They carry no HTTP status: ``api/errors.py`` maps them once to problem+json.

    TradeflowError
     ├── NotFound
     │    ├── DefinitionNotFound, InstanceNotFound, TaskNotFound, UserNotFound
     ├── Invalid                      (the input is wrong; nothing changed)
     │    ├── DiagramInvalid          (deploy lint: carries every problem)
     │    ├── ExpressionRefused       (the safe evaluator will not run it)
     │    ├── FormInvalid
     │    ├── MessageInvalid
     │    └── DelegationRefused       (nobody of that name holds the task's roles)
     ├── Forbidden                    (the caller may not do this)
     │    ├── NotInRole
     │    └── SeparationOfDuty        (maker-checker)
     ├── TooManyAttempts              (sign-in throttled: wait, then try again)
     ├── Conflict                     (the state moved on; retrying won't help)
     │    ├── TaskAlreadyClaimed, TaskNotOpen, InstanceNotRunning
     │    ├── BusinessKeyTaken        (a running instance of the process has it)
     │    └── MessageUndeliverable
     ├── ProcessFailed                (the diagram failed while running: rolled back)
     │    └── BudgetExceeded          (the command ran out of steps, time or memory)
     └── AnchorFailed                 (an audit anchor could not be written or read)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class TradeflowError(Exception):
    """Base of every error the engine raises on purpose."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(TradeflowError):
    pass


class DefinitionNotFound(NotFound):
    pass


class InstanceNotFound(NotFound):
    pass


class TaskNotFound(NotFound):
    pass


class UserNotFound(NotFound):
    pass


class Invalid(TradeflowError):
    pass


@dataclass(frozen=True)
class Problem:
    """One lint finding, naming the file and element it is about."""

    message: str
    file: str | None = None
    element: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        where = ":".join(p for p in (self.file, self.element) if p)
        return f"{where}: {self.message}" if where else self.message


class DiagramInvalid(Invalid):
    def __init__(self, problems: list[Problem]) -> None:
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the deployment:\n{lines}")
        self.problems = problems


class ExpressionRefused(Invalid):
    pass


class FormInvalid(Invalid):
    pass


class MessageInvalid(Invalid):
    pass


class DelegationRefused(Invalid):
    """The same answer whether the name is unknown or its user lacks the task's roles:
    a delegation is no way to learn which user names exist."""


class Forbidden(TradeflowError):
    pass


class NotInRole(Forbidden):
    pass


class SeparationOfDuty(Forbidden):
    pass


class TooManyAttempts(TradeflowError):
    """Too many failed sign-ins for an account or from an address; ``until`` says when
    the next attempt is heard."""


class AnsweredBefore(Exception):
    """A request sent again under its key: it changed nothing, and this is the answer the
    first one got (engine/runtime/repeats.py)."""

    def __init__(self, answer: dict[str, Any], status: int) -> None:
        super().__init__(f"answered before ({status})")
        self.answer = answer
        self.status = status


class Conflict(TradeflowError):
    pass


class TaskAlreadyClaimed(Conflict):
    pass


class TaskNotOpen(Conflict):
    pass


class InstanceNotRunning(Conflict):
    pass


class MessageUndeliverable(Conflict):
    pass


class BusinessKeyTaken(Conflict):
    """Messages find an instance by its business key: two running instances of one
    process with the same key would leave every message for it undeliverable."""


class ProcessFailed(TradeflowError):
    """The workflow raised while running; the command was rolled back."""


class AnchorFailed(TradeflowError):
    """An audit anchor could not be written outside the database (or its store read, or
    its setting is wrong); nothing was recorded as anchored."""


class BudgetExceeded(ProcessFailed):
    """The command spent more engine steps, seconds or built data than it may (see
    engine/execution/limits.py); rolled back. ``details``: ``budget`` and ``element``."""

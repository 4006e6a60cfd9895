"""What a task spec waits for. An event-based gateway waits for several events at once
(SpiffWorkflow gives it a MultipleEventDefinition), so always look inside."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import EventBasedGateway

from engine.modeling.diagrams import names_listed


def definitions_of(task_spec: Any) -> list[Any]:
    definition = getattr(task_spec, "event_definition", None)
    if definition is None:
        return []
    inner = getattr(definition, "event_definitions", None)
    return list(inner) if inner else [definition]


def messages_of(task_spec: Any) -> list[MessageEventDefinition]:
    return [d for d in definitions_of(task_spec) if isinstance(d, MessageEventDefinition)]


def waits_for_timer(task_spec: Any) -> bool:
    return any(isinstance(d, TimerEventDefinition) for d in definitions_of(task_spec))


MESSAGE_VARIABLES = "messageVariables"  # the property a message catch declares them by


def declared_variables(task_spec: Any) -> tuple[str, ...]:
    """The variables a message catch takes from its message (``messageVariables``: names,
    comma-separated); none if it declares none."""
    return names_listed((getattr(task_spec, "extensions", None) or {}).get(MESSAGE_VARIABLES))


EARLIER_MESSAGES = "acceptsEarlierMessages"  # "true": a message kept before it started


def takes_earlier_messages(task_spec: Any) -> bool:
    """Whether a message catch takes a message kept since before its instance started
    (``acceptsEarlierMessages`` = ``true``). By default it does not: a copy kept for an
    instance that ended, or for none, is no message for a new one (the balance invoice
    of an order must not take its deposit's duplicate)."""
    value = (getattr(task_spec, "extensions", None) or {}).get(EARLIER_MESSAGES, "")
    return str(value).strip().lower() == "true"


def _message_catches(processes: Iterable[Any]) -> Iterator[tuple[str, Any]]:
    """Each message catch of these process specs: the message's name and the spec that
    declares its properties. An event-based gateway waits on its events' behalf
    (SpiffWorkflow moves their definitions onto it): the declaration is on the event, the
    definition on the gateway."""
    for process in processes:
        for task_spec in process.task_specs.values():
            if not isinstance(task_spec, CatchingEvent):
                continue
            definitions = definitions_of(task_spec)
            # the gateway took its events' definitions, in the order of its outputs
            owners = task_spec.outputs if isinstance(task_spec, EventBasedGateway) else None
            for n, definition in enumerate(definitions):
                if isinstance(definition, MessageEventDefinition):
                    yield definition.name, owners[n] if owners is not None else task_spec


def message_variables(processes: Iterable[Any]) -> dict[str, frozenset[str]]:
    """Per message name, the variables the catch events of these process specs take."""
    found: dict[str, set[str]] = {}
    for name, owner in _message_catches(processes):
        found.setdefault(name, set()).update(declared_variables(owner))
    return {name: frozenset(names) for name, names in found.items()}


def messages_taken_early(processes: Iterable[Any]) -> frozenset[str]:
    """The message names a catch of these process specs takes even when kept since before
    its instance started."""
    return frozenset(n for n, owner in _message_catches(processes) if takes_earlier_messages(owner))

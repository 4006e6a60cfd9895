"""What a task spec waits for. An event-based gateway waits for several events at once
(SpiffWorkflow gives it a MultipleEventDefinition), so always look inside."""

from __future__ import annotations

from collections.abc import Iterable
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


def message_variables(processes: Iterable[Any]) -> dict[str, frozenset[str]]:
    """Per message name, the variables the catch events of these process specs take from
    it. An event-based gateway waits on its events' behalf (SpiffWorkflow moves their
    definitions onto it): the declaration is on the event, the definition on the gateway."""
    found: dict[str, set[str]] = {}
    for process in processes:
        for task_spec in process.task_specs.values():
            if not isinstance(task_spec, CatchingEvent):
                continue
            definitions = definitions_of(task_spec)
            # the gateway took its events' definitions, in the order of its outputs
            owners = task_spec.outputs if isinstance(task_spec, EventBasedGateway) else None
            for n, definition in enumerate(definitions):
                if not isinstance(definition, MessageEventDefinition):
                    continue
                owner = owners[n] if owners is not None else task_spec
                found.setdefault(definition.name, set()).update(declared_variables(owner))
    return {name: frozenset(names) for name, names in found.items()}

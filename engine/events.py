"""What a task spec waits for. An event-based gateway waits for several events at once
(SpiffWorkflow gives it a MultipleEventDefinition), so always look inside."""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition


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

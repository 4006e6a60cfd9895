"""SpiffWorkflow's Camunda parser, reading ``camunda:properties`` on events too.

Its task parsers keep a task's properties on the spec (``task_spec.extensions``), but its
event parsers drop them; a message catch declares there which variables the message may
set (``messageVariables``, engine/commands/messages.py), and the spec must carry that to run time.
"""

from __future__ import annotations

from typing import Any, ClassVar

from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.bpmn.specs.defaults import (
    BoundaryEvent,
    EndEvent,
    IntermediateCatchEvent,
    IntermediateThrowEvent,
    StartEvent,
)
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.camunda.parser.event_parsers import (
    CamundaBoundaryEventParser,
    CamundaEndEventParser,
    CamundaIntermediateCatchEventParser,
    CamundaIntermediateThrowEventParser,
    CamundaStartEventParser,
)
from SpiffWorkflow.camunda.parser.task_spec import CamundaTaskParser


def _with_properties(parser: type[Any]) -> type[Any]:
    reads = {"parse_extensions": CamundaTaskParser.parse_extensions}
    return type(parser.__name__, (parser,), reads)


class Parser(CamundaParser):  # type: ignore[misc]  # SpiffWorkflow ships no types
    OVERRIDE_PARSER_CLASSES: ClassVar[dict[str, tuple[type[Any], type[Any]]]] = {
        **CamundaParser.OVERRIDE_PARSER_CLASSES,
        full_tag("startEvent"): (_with_properties(CamundaStartEventParser), StartEvent),
        full_tag("endEvent"): (_with_properties(CamundaEndEventParser), EndEvent),
        full_tag("intermediateCatchEvent"): (
            _with_properties(CamundaIntermediateCatchEventParser),
            IntermediateCatchEvent,
        ),
        full_tag("intermediateThrowEvent"): (
            _with_properties(CamundaIntermediateThrowEventParser),
            IntermediateThrowEvent,
        ),
        full_tag("boundaryEvent"): (_with_properties(CamundaBoundaryEventParser), BoundaryEvent),
    }

"""SpiffWorkflow's Camunda parser, made to run diagrams as Camunda 7 runs them.

- ``camunda:properties`` on events too: its task parsers keep a task's properties on the
  spec (``task_spec.extensions``), but its event parsers drop them; a message catch
  declares there which variables the message may set (``messageVariables``,
  engine/commands/messages.py), and the spec must carry that to run time.
- A business rule task takes its decision as its binding says (engine/execution/decisions.py).
- A task without a type passes the token through (Spiff: a manual task nobody can do).
- A path may end without an end event: the token ends there, and the process when no
  token is left (Spiff: the element waits for ever for a way on).
"""

from __future__ import annotations

from typing import Any, ClassVar

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.bpmn.parser.ProcessParser import ProcessParser
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.defaults import (
    BoundaryEvent,
    CallActivity,
    EndEvent,
    IntermediateCatchEvent,
    IntermediateThrowEvent,
    StartEvent,
)
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.camunda.parser.CamundaParser import CAMUNDA_MODEL_NS
from SpiffWorkflow.camunda.parser.event_parsers import (
    CamundaBoundaryEventParser,
    CamundaEndEventParser,
    CamundaIntermediateCatchEventParser,
    CamundaIntermediateThrowEventParser,
    CamundaStartEventParser,
)
from SpiffWorkflow.camunda.parser.task_spec import (
    BusinessRuleTaskParser,
    CamundaTaskParser,
    SubWorkflowParser,
)

from engine.execution import PassThroughTask, decisions
from engine.execution import decision_tables as dmn_model
from engine.modeling import dmn
from engine.modeling.diagrams import is_variable_name

INITIATOR = "tradeflow:initiator"  # a start event's extension: camunda:initiator's variable


def _with_properties(parser: type[Any]) -> type[Any]:
    reads = {"parse_extensions": CamundaTaskParser.parse_extensions}
    return type(parser.__name__, (parser,), reads)


def _start_parser() -> type[Any]:
    """A start event keeps ``camunda:initiator``: the variable that gets who started."""
    base = _with_properties(CamundaStartEventParser)

    def parse_extensions(self: Any, node: Any = None) -> dict[str, Any]:
        found: dict[str, Any] = base.parse_extensions(self, node)
        initiator = (self.node.get(f"{{{CAMUNDA_MODEL_NS}}}initiator") or "").strip()
        if initiator:
            found[INITIATOR] = initiator
        return found

    return type("CamundaStartEventParser", (base,), {"parse_extensions": parse_extensions})


class _ProcessParser(ProcessParser):  # type: ignore[misc]
    def add_tasks(self) -> None:
        super().add_tasks()
        spec = self.spec
        triggered = set(spec.start.trigger_specs)  # event subprocesses: joined when they run
        for task_spec in list(spec.task_specs.values()):
            if task_spec.outputs or task_spec is spec.end or task_spec.name == "End":
                continue
            if task_spec.name not in triggered:
                task_spec.connect(spec.end)  # an implicit end


class _SubprocessParser(SubWorkflowParser):  # type: ignore[misc]
    """An embedded subprocess, which may end without an end event (Spiff insists on one)."""

    def create_task(self) -> Any:
        starts = self.xpath("./bpmn:startEvent")
        if len(starts) != 1:
            raise ValidationException(
                f"a subprocess needs exactly one start event; found {len(starts)}",
                node=self.node,
                file_name=self.filename,
            )
        self.process_parser.parser.create_parser(self.node, filename=self.filename, lane=self.lane)
        spec_id = self.node.get("id")
        self.process_parser.parser.process_parsers[spec_id].parent = self.process_parser
        return self.spec_class(
            self.spec, self.bpmn_id, subworkflow_spec=spec_id, **self.bpmn_attributes
        )


class _DecisionTaskParser(BusinessRuleTaskParser):  # type: ignore[misc]
    """A business rule task that keeps its decision's id and binding (execution/decisions.py)."""

    def create_task(self) -> Any:
        decision_ref = self.get_decision_ref(self.node)
        binding = self.attribute("decisionRefBinding", "camunda") or decisions.LATEST
        mapping = (self.attribute("mapDecisionResult", "camunda") or "resultList").strip()
        if mapping not in decisions.MAPPINGS:
            raise ValidationException(
                f"camunda:mapDecisionResult '{mapping}' is not one of "
                f"{', '.join(decisions.MAPPINGS)}",
                node=self.node,
                file_name=self.filename,
            )
        result_variable = (self.attribute("resultVariable", "camunda") or "").strip() or None
        if result_variable is not None and not is_variable_name(result_variable):
            raise ValidationException(
                f"camunda:resultVariable '{result_variable[:80]}' must be a variable's name "
                "(letters, digits and _)",
                node=self.node,
                file_name=self.filename,
            )
        return decisions.DecisionTask(
            self.spec,
            self.bpmn_id,
            dmnEngine=self.process_parser.parser.get_engine(decision_ref, self.node, self.filename),
            decision_ref=decision_ref,
            binding=binding.strip(),
            result_variable=result_variable,
            map_result=mapping,
            **self.bpmn_attributes,
        )


class Parser(CamundaParser):  # type: ignore[misc]  # SpiffWorkflow ships no types
    PROCESS_PARSER_CLASS = _ProcessParser
    OVERRIDE_PARSER_CLASSES: ClassVar[dict[str, tuple[type[Any], type[Any]]]] = {
        **CamundaParser.OVERRIDE_PARSER_CLASSES,
        full_tag("startEvent"): (_start_parser(), StartEvent),
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
        full_tag("task"): (CamundaTaskParser, PassThroughTask),
        full_tag("businessRuleTask"): (_DecisionTaskParser, decisions.DecisionTask),
        full_tag("subProcess"): (_SubprocessParser, CallActivity),
    }

    def __init__(self) -> None:
        super().__init__()
        self.decisions: dict[str, tuple[str | None, dict[str, dmn_model.Decision]]] = {}

    def add_dmn_xml(self, node: etree._Element, filename: str | None = None) -> None:
        """Every decision of the file, read as engine/modeling/dmn.py reads it (Spiff's
        reader takes one table per file and none of FEEL); the first problem refuses it."""
        found, problems = dmn.read(node)
        if problems:
            element, message = problems[0]
            raise ValidationException(f"{element}: {message}", file_name=filename or "")
        for decision_id in found:
            self.decisions[decision_id] = (filename, found)

    def get_engine(
        self, decision_ref: str, node: etree._Element | None, filename: str = ""
    ) -> dmn_model.Graph:
        """The decision the business rule task ``node`` refers to, with what it requires."""
        _, found = self.decisions.get(decision_ref, (None, {}))
        graph = dmn.graph(found, decision_ref)
        if graph is None:
            known = ", ".join(sorted(self.decisions)) or "none"
            raise ValidationException(
                f"no decision with id '{decision_ref}' is deployed or in this deployment "
                f"(known: {known})",
                node=node,
                file_name=filename,
            )
        return graph

"""Deploy-time lint: every problem in a deployment at once, each naming its element.

A deployment is checked as a whole (BPMN, DMN and forms together, plus what is already
deployed) so that a call activity or decision may refer to a file in the same upload.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException

import forms
from engine.errors import Problem
from engine.execution import Limits
from engine.modeling import constructs, diagrams, dmn, expression_checks, runaway
from engine.modeling.diagrams import BPMN_NS, FORM_INPUTS, NS, UnreadableFile, escalation_roles
from engine.modeling.events import EARLIER_MESSAGES, MESSAGE_VARIABLES
from engine.modeling.parser import Parser
from engine.people import ROLE_ID
from engine.timers import BusinessCalendar

_VALIDATOR: BpmnValidator | None = None


def _validator() -> BpmnValidator:
    global _VALIDATOR
    if _VALIDATOR is None:  # loading the XSDs is slow: once per process
        _VALIDATOR = BpmnValidator()
    return _VALIDATOR


@dataclass
class Bundle:
    """The files of one deployment, read and normalised, with what lint found."""

    bpmn: dict[str, etree._Element] = field(default_factory=dict)
    dmn: dict[str, etree._Element] = field(default_factory=dict)
    forms: dict[str, dict[str, Any]] = field(default_factory=dict)
    raw: dict[str, bytes] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # runs, not quite as Camunda 7 does
    parser: Parser | None = None

    def problem(self, file: str | None, element: str | None, message: str) -> None:
        self.problems.append(Problem(message=message, file=file, element=element))


def read_files(files: list[tuple[str, bytes]]) -> Bundle:
    """Read each file by its extension; unreadable files become problems."""
    bundle = Bundle()
    for name, content in files:
        suffix = Path(name).suffix.lower()
        bundle.raw[name] = content
        try:
            if suffix == ".form":
                bundle.forms[name] = diagrams.parse_form(content)
                continue
            if suffix not in (".bpmn", ".dmn", ".xml"):
                raise UnreadableFile("expected a .bpmn, .dmn or .form file")
            root = diagrams.parse_xml(content)
            kind = diagrams.kind_of(root)
        except UnreadableFile as exc:
            bundle.problem(name, None, str(exc))
            continue
        if kind == "bpmn":
            for element, why in diagrams.normalise_camunda(root):
                bundle.problem(name, element, why)
            bundle.bpmn[name] = root
        else:
            bundle.dmn[name] = root
    return bundle


def lint(
    bundle: Bundle,
    deployed_processes: Callable[[str], bytes | None],
    deployed_decisions: Callable[[str], bytes | None],
    deployed_forms: set[str],
    min_interval: float = Limits.min_timer_interval,
) -> None:
    """Check the bundle, appending to ``bundle.problems``; leave a ready parser on success.
    ``min_interval``: the fewest seconds between two rounds of a timer cycle.

    The callables return the stored XML that defines a process or decision id already
    deployed, so references from this deployment to earlier ones resolve.
    """
    process_files: dict[str, str] = {}
    for name, root in bundle.bpmn.items():
        _check_schema(bundle, name, root)
        for pid, _ in diagrams.process_ids(root):
            if pid in process_files:
                bundle.problem(name, pid, f"process id also defined in {process_files[pid]}")
            process_files[pid] = name
    decisions = {d: n for n, root in bundle.dmn.items() for d in diagrams.decision_ids(root)}
    form_keys = {schema["id"] for schema in bundle.forms.values()} | deployed_forms

    for name, schema in bundle.forms.items():
        for key, why in forms.problems(schema):
            bundle.problem(name, key, why)
    extra_xml: list[bytes] = []
    for name, root in bundle.bpmn.items():
        _check_user_tasks(bundle, name, root, form_keys)
        _check_message_catches(bundle, name, root)
        bundle.problems += runaway.endless_loops(name, root)
        bundle.problems += runaway.flow_loops(name, root, min_interval)
        for element, why in constructs.refusals(root, "bpmn"):
            bundle.problem(name, element, why)
        bundle.warnings += [f"{name}: {w}" for w in constructs.differences(root, "bpmn")]
        for element, called in diagrams.called_elements(root):
            if called in process_files:
                continue
            stored = deployed_processes(called) if called else None
            if stored is None:
                bundle.problem(name, element, f"calls process '{called}', which is not deployed")
            else:
                extra_xml.append(stored)
        for element, decision in diagrams.decision_refs(root):
            if decision in decisions:
                continue
            if diagrams.decision_binding(root, element) == "deployment":
                bundle.problem(
                    name, element,
                    f"decisionRefBinding 'deployment' takes decision '{decision}' from this "
                    "deployment: deploy its .dmn file with the process, or bind to latest",
                )  # fmt: skip
                continue
            stored = deployed_decisions(decision) if decision else None
            if stored is None:
                bundle.problem(name, element, f"decision '{decision}' is not deployed")
            else:
                extra_xml.append(stored)
        for element, kind, text in expression_checks.bpmn_expressions(root):
            if refused := expression_checks.problem(kind, text, min_interval):
                bundle.problem(name, element, refused)
    bundle.problems += runaway.self_calls(bundle.bpmn, deployed_processes)
    for name, root in bundle.dmn.items():
        for element, why in constructs.refusals(root, "dmn"):
            bundle.problem(name, element, why)
        bundle.warnings += [f"{name}: {w}" for w in constructs.differences(root, "dmn")]
        for element, why in dmn.read(root)[1]:
            bundle.problem(name, element, why)
    if not bundle.problems:
        known = set(process_files) | set(decisions)
        extra_xml = _called_further(extra_xml, known, deployed_processes, deployed_decisions)
        _parse(bundle, extra_xml, list(process_files))


def _called_further(
    extra_xml: list[bytes],
    known: set[str],
    deployed_processes: Callable[[str], bytes | None],
    deployed_decisions: Callable[[str], bytes | None],
) -> list[bytes]:
    """The deployed files the upload refers to, and those they refer to in turn: a call
    to a deployed process that calls another needs that one too. Each file once."""
    files: dict[bytes, None] = dict.fromkeys(extra_xml)
    queue = list(files)
    while queue:
        root = diagrams.parse_xml(queue.pop())
        if diagrams.kind_of(root) != "bpmn":
            continue
        known.update(pid for pid, _ in diagrams.process_ids(root))
        wanted = [(called, deployed_processes) for _, called in diagrams.called_elements(root)]
        wanted += [(decision, deployed_decisions) for _, decision in diagrams.decision_refs(root)]
        for key, look_up in wanted:
            if not key or key in known:
                continue
            known.add(key)
            stored = look_up(key)
            if stored is not None and stored not in files:
                files[stored] = None
                queue.append(stored)
    return list(files)


def _check_schema(bundle: Bundle, name: str, root: etree._Element) -> None:
    schema = _validator().validator
    copy = etree.fromstring(etree.tostring(root))
    _validator().preprocess(copy)
    if not schema.validate(copy):
        for error in schema.error_log:
            bundle.problem(name, f"line {error.line}", f"not valid BPMN: {error.message}")


def _check_user_tasks(bundle: Bundle, name: str, root: etree._Element, form_keys: set[str]) -> None:
    element_ids = {node.get("id") for node in root.iter() if node.get("id")}
    for task in diagrams.user_tasks(root):
        if not task.routed:
            bundle.problem(
                name,
                task.element_id,
                "user task is routed to no role: set camunda:candidateGroups or put it in a "
                "lane (or name its camunda:assignee or candidateUsers)",
            )
        for problem in task.assignment_problems:
            bundle.problem(name, task.element_id, problem)
        if task.form_key and task.form_key not in form_keys:
            bundle.problem(name, task.element_id, f"form '{task.form_key}' is not deployed")
        for other in task.separate_from:
            if other not in element_ids:
                bundle.problem(name, task.element_id, f"separateFrom names no element '{other}'")
        if task.sla is not None:
            try:
                BusinessCalendar().working_duration(task.sla)
            except ValueError as exc:
                bundle.problem(name, task.element_id, f"sla '{task.sla}' refused: {exc}")
        for variable in diagrams.names_listed(task.properties.get(FORM_INPUTS)):
            if not diagrams.is_variable_name(variable):
                bundle.problem(
                    name,
                    task.element_id,
                    f"formInputs names '{variable}', which is no variable name",
                )
        for role in task.roles:
            if not ROLE_ID.match(role) and "{" not in role:  # an expression: constructs.py
                bundle.problem(
                    name,
                    task.element_id,
                    f"candidate group '{role}' is not a role id (lower_snake_case, such as "
                    f"'{diagrams.role_id(role)}'): no user could ever hold the task",
                )
        for role in escalation_roles(task.properties):
            if not ROLE_ID.match(role):
                bundle.problem(
                    name,
                    task.element_id,
                    f"escalateTo '{role}' is not a role id (lower_snake_case)",
                )
    _check_business_timers(bundle, name, root)


_CATCHES = ("intermediateCatchEvent", "boundaryEvent", "startEvent", "receiveTask")


def _check_message_catches(bundle: Bundle, name: str, root: etree._Element) -> None:
    """A message catch lists the variables a message may set (``messageVariables``):
    identifiers, which nothing else may stand in for (engine/commands/messages.py)."""
    for node in root.iter(*(f"{{{BPMN_NS}}}{tag}" for tag in _CATCHES)):
        if not node.xpath("./bpmn:messageEventDefinition", namespaces=NS) and not (
            etree.QName(node).localname == "receiveTask" and node.get("messageRef")
        ):
            continue
        element = node.get("id", "")
        properties = diagrams.properties_of(node)
        early = properties.get(EARLIER_MESSAGES)
        if early is not None and early.strip().lower() not in ("true", "false"):
            bundle.problem(name, element, f"{EARLIER_MESSAGES} is true or false, not '{early}'")
        raw = properties.get(MESSAGE_VARIABLES, "")
        for part in diagrams.names_listed(raw):
            if not diagrams.is_variable_name(part):
                bundle.problem(
                    name, element, f"messageVariables names '{part}', which is no variable name"
                )


def _check_business_timers(bundle: Bundle, name: str, root: etree._Element) -> None:
    """``calendar`` = ``business`` counts a duration in working time: durations only."""
    gateways = {n.get("id") for n in root.iter(f"{{{BPMN_NS}}}eventBasedGateway")}
    sources = {
        f.get("targetRef"): f.get("sourceRef") for f in root.iter(f"{{{BPMN_NS}}}sequenceFlow")
    }
    for node in root.iter(f"{{{BPMN_NS}}}boundaryEvent", f"{{{BPMN_NS}}}intermediateCatchEvent"):
        if diagrams.properties_of(node).get("calendar") != "business":
            continue
        element = node.get("id", "")
        durations = node.xpath(".//bpmn:timeDuration", namespaces=NS)
        if not durations:
            problem = "calendar 'business' applies to timeDuration timers only"
            bundle.problem(name, element, problem)
        elif sources.get(element) in gateways:
            problem = "calendar 'business' is not supported behind an event-based gateway"
            bundle.problem(name, element, problem)
        else:
            text = (durations[0].text or "").strip()
            try:
                literal = ast.literal_eval(text) if text[:1] in "\"'" else text
            except (ValueError, SyntaxError):
                continue  # an expression over the data: checked when it is evaluated
            if isinstance(literal, str) and literal.upper().startswith("P"):
                try:  # a fixed value: check it now, not when it falls due
                    BusinessCalendar().working_duration(literal)
                except ValueError as exc:
                    bundle.problem(name, element, f"business duration '{literal}' refused: {exc}")


def _parse(bundle: Bundle, extra_xml: list[bytes], process_ids: list[str]) -> None:
    """Let SpiffWorkflow's Camunda parser build every process; its errors are problems."""
    parser = Parser()
    try:
        for xml in extra_xml:
            root = diagrams.parse_xml(xml)
            if diagrams.kind_of(root) == "dmn":
                parser.add_dmn_xml(root, filename="(deployed)")
            else:
                diagrams.normalise_camunda(root)
                parser.add_bpmn_xml(root, filename="(deployed)")
        for name, root in bundle.dmn.items():
            parser.add_dmn_xml(root, filename=name)
        for name, root in bundle.bpmn.items():
            parser.add_bpmn_xml(root, filename=name)
    except ValidationException as exc:
        bundle.problem(exc.file_name or None, exc.id or None, _spiff_message(exc))
        return
    for pid in process_ids:
        try:
            parser.get_spec(pid)
            parser.get_subprocess_specs(pid)
        except ValidationException as exc:
            bundle.problem(exc.file_name or None, exc.id or pid, _spiff_message(exc))
        except Exception as exc:  # the parser raises plain errors on some malformed input
            bundle.problem(None, pid, f"SpiffWorkflow cannot build this process: {exc}")
    bundle.parser = parser


def _spiff_message(exc: ValidationException) -> str:
    return str(exc.args[0]) if exc.args else str(exc)

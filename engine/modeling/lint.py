"""Deploy-time lint: every problem in a deployment at once, each naming its element.

A deployment is checked as a whole (BPMN, DMN and forms together, plus what is already
deployed) so that a call activity or decision may refer to a file in the same upload.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

import forms
from engine.errors import ExpressionRefused, Problem
from engine.execution import Limits, check_expression, check_script, cycle_too_fast
from engine.modeling import constructs, diagrams, runaway
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
            diagrams.normalise_camunda(root)
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
            stored = deployed_decisions(decision) if decision else None
            if stored is None:
                bundle.problem(name, element, f"decision '{decision}' is not deployed")
            else:
                extra_xml.append(stored)
        for element, kind, text in _bpmn_expressions(root):
            _check(bundle, name, element, kind, text, min_interval)
    bundle.problems += runaway.self_calls(bundle.bpmn, deployed_processes)
    for name, root in bundle.dmn.items():
        for element, why in constructs.refusals(root, "dmn"):
            bundle.problem(name, element, why)
        bundle.warnings += [f"{name}: {w}" for w in constructs.differences(root, "dmn")]
        for element, kind, text in _dmn_expressions(root):
            _check(bundle, name, element, kind, text, min_interval)
    if not bundle.problems:
        _parse(bundle, extra_xml, list(process_files))


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
        if not task.roles:
            bundle.problem(
                name,
                task.element_id,
                "user task is routed to no role: set camunda:candidateGroups or put it in a lane",
            )
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


def _bpmn_expressions(root: etree._Element) -> Iterator[tuple[str, str, str]]:
    for flow in root.iter(f"{{{BPMN_NS}}}sequenceFlow"):
        for cond in flow.xpath("./bpmn:conditionExpression", namespaces=NS):
            yield flow.get("id", ""), "condition", cond.text or ""
    for cond in root.iter(f"{{{BPMN_NS}}}conditionalEventDefinition"):
        for node in cond.xpath("./bpmn:condition", namespaces=NS):
            yield _owner(cond, 1), "condition", node.text or ""
    for tag in ("timeDuration", "timeDate", "timeCycle"):
        for node in root.iter(f"{{{BPMN_NS}}}{tag}"):
            yield _owner(node, 2), f"timer {tag}", node.text or ""
    for script_task in root.iter(f"{{{BPMN_NS}}}scriptTask"):
        for script in script_task.xpath("./bpmn:script", namespaces=NS):
            yield script_task.get("id", ""), "script", script.text or ""
    for tag in ("completionCondition", "loopCardinality"):
        for node in root.iter(f"{{{BPMN_NS}}}{tag}"):
            yield _owner(node, 2), "multi-instance", node.text or ""
    for node in root.iter(f"{{{BPMN_NS}}}loopCondition"):
        yield _owner(node, 2), "loop condition", node.text or ""
    for tag in ("messagePath", "formalExpression"):
        for node in root.iter(f"{{{BPMN_NS}}}{tag}"):
            parent = node.getparent()
            if (
                parent is not None
                and etree.QName(parent).localname == "correlationPropertyRetrievalExpression"
            ):
                yield _owner(node, 2), "correlation", node.text or ""


def _owner(node: etree._Element, levels: int) -> str:
    """The id of the element ``levels`` up: the event that owns a timer value, say."""
    owner: etree._Element | None = node
    for _ in range(levels):
        owner = owner.getparent() if owner is not None else None
    return owner.get("id", "") if owner is not None else ""


def _local(node: etree._Element, name: str) -> Iterator[etree._Element]:
    for child in node.iter():
        if isinstance(child.tag, str) and etree.QName(child).localname == name:
            yield child


def _dmn_expressions(root: etree._Element) -> Iterator[tuple[str, str, str]]:
    for decision in _local(root, "decision"):
        for expr in _local(decision, "inputExpression"):
            for text in _local(expr, "text"):
                yield decision.get("id", ""), "decision input", text.text or ""
        for rule in _local(decision, "rule"):
            for entry in _local(rule, "inputEntry"):
                for text in _local(entry, "text"):
                    yield rule.get("id", ""), "decision cell", text.text or ""
            for entry in _local(rule, "outputEntry"):
                for text in _local(entry, "text"):
                    yield rule.get("id", ""), "decision output", text.text or ""


def _check(
    bundle: Bundle, name: str, element: str, kind: str, text: str, min_interval: float
) -> None:
    text = text.strip()
    try:
        if kind == "script":
            check_script(text)
        elif kind == "decision cell":
            _check_cell(text)
        elif kind.startswith("timer") and text:
            check_expression(text)
            _check_timer_literal(kind.removeprefix("timer "), text, min_interval)
        elif text:
            check_expression(text)
        elif kind in ("condition", "loop condition") or kind.startswith("timer"):
            raise ExpressionRefused("empty expression")
        juel = _juel_names(text) if kind != "script" else []
        if juel:
            raise ExpressionRefused(
                f"{', '.join(juel)} is JUEL, which is not read here yet: write expressions "
                "Python-style (True, False, None)"
            )
    except (ExpressionRefused, SyntaxError) as exc:
        reason = _reason(exc)
        if "syntax" in reason and _JUEL_OPERATORS.search(text):
            reason += (
                " (JUEL's &&, ||, !, eq, ne, lt, gt, le, ge and empty are not read here yet: "
                "write and, or, not, ==, !=, <, >, <=, >=)"
            )
        bundle.problem(name, element, f"{kind} '{_short(text)}' refused: {reason}")


_JUEL_LITERALS = ("true", "false", "null")
_JUEL_OPERATORS = re.compile(r"&&|\|\||!(?!=)|\b(eq|ne|lt|gt|le|ge|empty)\b")


def _juel_names(text: str) -> list[str]:
    """JUEL's literals written as names (Python reads ``true`` as a variable)."""
    try:
        tree = ast.parse(re.sub(r"\?", "dmninputexpr", text), mode="eval")
    except SyntaxError:
        try:
            tree = ast.parse(f"dmninputexpr {text}", mode="eval")
        except SyntaxError:
            return []
    found = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in _JUEL_LITERALS}
    return sorted(found)


def _check_timer_literal(tag: str, text: str, min_interval: float) -> None:
    """A quoted ISO 8601 value must parse now, not fail when the timer is reached; a
    cycle must not repeat more often than the minimum interval."""
    value = runaway.timer_literal(text)
    if value is None:  # an expression over variables ('"P" + str(days) + "D"'): checked when run
        return
    try:
        if tag == "timeCycle":
            _, _, every = TimerEventDefinition.parse_iso_recurring_interval(value)
        else:
            TimerEventDefinition.parse_time_or_duration(value)
    except Exception as exc:  # Spiff raises bare ValueError/AttributeError/Exception here
        raise ExpressionRefused(f"'{value}' is not an ISO 8601 {tag[4:].lower()}") from exc
    if tag == "timeCycle" and every.total_seconds() < min_interval:
        raise ExpressionRefused(cycle_too_fast(every.total_seconds(), min_interval))


def _check_cell(text: str) -> None:
    """DMN cells: '-' or empty means any; '>= 1000' and '1 < ? < 5' are tests on the input."""
    if text in ("", "-"):
        return
    text = re.sub(r"\?", "dmninputexpr", text)
    if text.replace(" ", "").startswith("not("):
        raise ExpressionRefused(
            "FEEL's not(...) is not read here yet: write 'not in [...]' or '!= ...'"
        )
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:  # an operator with no left side tests the input, as Spiff's DMN does
        text = f"dmninputexpr {text}"
    else:
        if isinstance(tree.body, ast.Tuple):
            raise ExpressionRefused(
                'a FEEL list of values is not read here yet: write \'in ["A", "B"]\''
            )
    check_expression(text)


def _reason(exc: Exception) -> str:
    return exc.msg if isinstance(exc, SyntaxError) else str(exc)


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


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

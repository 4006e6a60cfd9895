"""Reading uploaded diagrams safely and the way Camunda Modeler means them.

Everything here is pure: bytes in, lxml trees and small records out. Lint and deploy
build on it; nothing is stored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from engine.errors import ExpressionRefused
from engine.execution import check_expression
from engine.modeling import assignment, juel

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
DMN_NAMESPACES = frozenset(
    {
        "http://www.omg.org/spec/DMN/20151101/dmn.xsd",
        "https://www.omg.org/spec/DMN/20191111/MODEL/",
        "https://www.omg.org/spec/DMN/20230324/MODEL/",
        "http://www.omg.org/spec/DMN/20180521/MODEL/",
    }
)
NS = {"bpmn": BPMN_NS, "camunda": CAMUNDA_NS}
MAX_FILE_BYTES = 5 * 1024 * 1024

# ISO 8601 literals as Camunda Modeler writes them: durations, dates and cycles.
_ISO_TIMER = re.compile(
    r"^(R\d*/)?(P(?=[\dT])[\dYMWDTHS.,]*|\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)"
    r"(/(P[\dYMWDTHS.,]+|\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:?\d{2})?))?$"
)
_JUEL = re.compile(r"^\s*[$#]\{(.*)\}\s*$", re.DOTALL)


class UnreadableFile(ValueError):
    """The file is not something we can read as the kind it claims to be."""


def _xml_parser() -> etree.XMLParser:
    # No entities, no DTDs, no network: an uploaded file can't read files or fetch URLs.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
    )


def parse_xml(content: bytes) -> etree._Element:
    """Parse uploaded XML safely; raise UnreadableFile with the parser's reason."""
    if len(content) > MAX_FILE_BYTES:
        raise UnreadableFile(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"not UTF-8: {exc}") from exc
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise UnreadableFile("document type declarations and entities are not allowed")
    try:
        root = etree.fromstring(content, _xml_parser())
    except etree.XMLSyntaxError as exc:
        raise UnreadableFile(f"not well-formed XML: {exc}") from exc
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:  # belt and braces
        raise UnreadableFile("document type declarations and entities are not allowed")
    return root


def kind_of(root: etree._Element) -> str:
    """'bpmn' or 'dmn' by the root element, else UnreadableFile."""
    qname = etree.QName(root)
    if qname.localname == "definitions" and qname.namespace == BPMN_NS:
        return "bpmn"
    if qname.localname == "definitions" and qname.namespace in DMN_NAMESPACES:
        return "dmn"
    raise UnreadableFile(f"not a BPMN or DMN document (root element {root.tag!r})")


def parse_form(content: bytes) -> dict[str, Any]:
    """A Camunda Forms (form-js) schema: JSON with an id and a list of components."""
    if len(content) > MAX_FILE_BYTES:
        raise UnreadableFile(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        schema = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnreadableFile(f"not JSON: {exc}") from exc
    except RecursionError:  # [[[[...]]]]: the decoder recurses per level
        raise UnreadableFile("not JSON a form could hold: nested too deeply") from None
    _check_text(schema)
    if not isinstance(schema, dict) or not isinstance(schema.get("components"), list):
        raise UnreadableFile("not a Camunda form: no 'components' list")
    if not isinstance(schema.get("id"), str) or not schema["id"]:
        raise UnreadableFile("a Camunda form needs an 'id'")
    return schema


def _check_text(value: Any) -> None:
    """JSON escapes can spell what no database column holds: NUL, lone surrogates."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise UnreadableFile("NUL characters are not allowed")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise UnreadableFile("not valid Unicode: a lone surrogate") from None


def normalise_camunda(root: etree._Element) -> list[tuple[str, str]]:
    """Rewrite what Camunda Modeler writes into what SpiffWorkflow runs, in place; return
    (element, why) for each expression that can't run here.

    Timer values come unquoted (``PT24H``) where Spiff evaluates an expression, and
    expressions may be JUEL in ``${...}``: translated here (engine/modeling/juel.py).
    """
    refused: list[tuple[str, str]] = []
    for tag in ("timeDuration", "timeDate", "timeCycle"):
        for node in root.iter(f"{{{BPMN_NS}}}{tag}"):
            text = (node.text or "").strip()
            if _ISO_TIMER.match(text):
                node.text = f'"{text}"'
            else:
                _translate(node, refused)
    for tag in ("conditionExpression", "condition", "loopCardinality", "completionCondition"):
        for node in root.iter(f"{{{BPMN_NS}}}{tag}"):
            _translate(node, refused)
    for scope in root.iter(f"{{{BPMN_NS}}}process", f"{{{BPMN_NS}}}subProcess"):
        refused += _link(scope)
    return refused


def _link_name(event: etree._Element) -> str:
    """The link's name: its definition's, as Camunda matches them."""
    definition = event.find(f"{{{BPMN_NS}}}linkEventDefinition")
    return str(definition.get("name") or "").strip() if definition is not None else ""


def _drop_link(event: etree._Element) -> None:
    for definition in event.findall(f"{{{BPMN_NS}}}linkEventDefinition"):
        event.remove(definition)


def _link(scope: etree._Element) -> list[tuple[str, str]]:
    """Link events as Camunda runs them: a throw goes on at the catch of its name in the
    same process or subprocess. Drawn here as the sequence flow they stand for: the throw
    and the catch become none events joined by a flow."""
    refused: list[tuple[str, str]] = []
    linked = "bpmn:linkEventDefinition"
    catches: dict[str, etree._Element] = {}
    for catch in scope.xpath(f"./bpmn:intermediateCatchEvent[{linked}]", namespaces=NS):
        name = _link_name(catch)
        if not name:
            refused.append((catch.get("id", ""), "a link event needs a name (its definition's)"))
            continue
        if name in catches:
            refused.append((catch.get("id", ""), f"another link catch event is named '{name}'"))
        catches[name] = catch
    for throw in scope.xpath(f"./bpmn:intermediateThrowEvent[{linked}]", namespaces=NS):
        name = _link_name(throw)
        if not name:
            refused.append((throw.get("id", ""), "a link event needs a name (its definition's)"))
            continue
        if name not in catches:
            refused.append((
                throw.get("id", ""),
                f"no link catch event named '{name}' in the same process or subprocess",
            ))  # fmt: skip
            continue
        _drop_link(throw)
        flow = etree.Element(f"{{{BPMN_NS}}}sequenceFlow")
        throw.addnext(flow)  # among the flow elements: the schema wants artifacts after them
        flow.set("id", f"{throw.get('id')}__link")
        flow.set("sourceRef", throw.get("id", ""))
        flow.set("targetRef", catches[name].get("id", ""))
    for catch in catches.values():
        _drop_link(catch)
        catch.tag = f"{{{BPMN_NS}}}intermediateThrowEvent"  # a catch must wait for something
    return refused


def is_juel(text: str | None) -> bool:
    """Whether ``text`` is a whole ``${…}`` or ``#{…}`` expression."""
    return bool(text and _JUEL.match(text))


_KINDS = {"conditionExpression": "condition", "condition": "condition",
          "loopCardinality": "multi-instance", "completionCondition": "multi-instance"}  # fmt: skip


def _translate(node: etree._Element, refused: list[tuple[str, str]]) -> None:
    if not node.text or not (match := _JUEL.match(node.text)):
        return
    inside = match.group(1).strip()
    try:
        node.text = juel.translate(inside)
    except (juel.JuelRefused, RecursionError) as exc:
        if getattr(exc, "grammar", False) and "#" not in inside and _python_style(inside):
            # as ${…} was read before JUEL was: Python-style inside
            node.text = inside
            return
        tag = etree.QName(node).localname
        kind = _KINDS.get(tag, f"timer {tag}")
        why = exc if isinstance(exc, juel.JuelRefused) else "it is nested too deeply"
        refused.append((_owner_id(node), f"{kind} '{node.text.strip()[:80]}' refused: {why}"))


def _python_style(text: str) -> bool:
    try:
        check_expression(text)
    except (ExpressionRefused, RecursionError):
        return False
    return True


def _owner_id(node: etree._Element) -> str:
    """The flow element or sequence flow an expression belongs to."""
    owner: etree._Element | None = node
    while owner is not None:
        name = etree.QName(owner).localname
        if owner.get("id") and not name.endswith(("EventDefinition", "LoopCharacteristics")):
            return str(owner.get("id"))
        owner = owner.getparent()
    return ""


def role_id(lane_name: str) -> str:
    """'Documents and Logistics' -> 'documents_logistics'; 'Risk & Compliance' likewise."""
    words = [w for w in re.split(r"[^0-9a-z]+", lane_name.lower()) if w and w != "and"]
    return "_".join(words)


@dataclass
class UserTaskInfo:
    """What a user task says about routing, forms and rules (camunda attributes)."""

    process_id: str
    element_id: str
    name: str | None
    roles: list[str]
    form_key: str | None
    properties: dict[str, str] = field(default_factory=dict)
    priority: int = 50
    # camunda:assignee, candidateUsers, ... as expressions run when the task is created
    # (engine/modeling/assignment.py), and why any of them is refused
    assignment: dict[str, str] = field(default_factory=dict)
    assignment_problems: list[str] = field(default_factory=list)

    @property
    def routed(self) -> bool:
        """Someone can take the task: roles, an assignee, candidate users or groups."""
        return bool(self.roles) or any(
            key in self.assignment for key in ("assignee", "candidateUsers", "candidateGroups")
        )

    @property
    def separate_from(self) -> list[str]:
        raw = self.properties.get("separateFrom", "")
        return list(names_listed(raw))

    @property
    def sla(self) -> str | None:
        return self.properties.get("sla")


def _camunda(node: etree._Element, name: str) -> str | None:
    value = node.get(f"{{{CAMUNDA_NS}}}{name}")
    return value.strip() if value and value.strip() else None


def form_key_of(node: etree._Element) -> str | None:
    """camunda:formRef, else camunda:formKey (with Camunda's deployment prefixes removed)."""
    ref = _camunda(node, "formRef")
    if ref:
        return ref
    key = _camunda(node, "formKey")
    if not key:
        return None
    for prefix in ("camunda-forms:deployment:", "camunda-forms:app:", "embedded:deployment:"):
        key = key.removeprefix(prefix)
    return key.removesuffix(".form")


def names_listed(raw: object) -> tuple[str, ...]:
    """A comma-separated attribute's or property's names, each once, in order."""
    text = str(raw or "")
    return tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


FORM_INPUTS = "formInputs"  # a user task's property: the variables its form starts from


def escalation_roles(properties: dict[str, Any]) -> tuple[str, ...]:
    """The ``escalateTo`` property: comma-separated role ids."""
    return names_listed(properties.get("escalateTo"))


def is_variable_name(name: object) -> bool:
    """What an expression can use as a variable: an identifier, no dunders."""
    return isinstance(name, str) and name.isidentifier() and not name.startswith("__")


def properties_of(node: etree._Element) -> dict[str, str]:
    props: dict[str, str] = {}
    for prop in node.xpath(
        "./bpmn:extensionElements/camunda:properties/camunda:property", namespaces=NS
    ):
        if prop.get("name"):
            props[prop.get("name")] = prop.get("value", "")
    return props


def lanes_by_element(process: etree._Element) -> dict[str, str]:
    lanes: dict[str, str] = {}
    for lane in process.iter(f"{{{BPMN_NS}}}lane"):
        for ref in lane.xpath("./bpmn:flowNodeRef", namespaces=NS):
            if ref.text:
                lanes[ref.text.strip()] = lane.get("name") or lane.get("id") or ""
    return lanes


def user_tasks(root: etree._Element) -> list[UserTaskInfo]:
    """Every user (and manual) task in a BPMN document, with its queue(s) resolved."""
    found: list[UserTaskInfo] = []
    for process in root.xpath("./bpmn:process", namespaces=NS):
        lanes = lanes_by_element(process)
        for node in process.iter(f"{{{BPMN_NS}}}userTask", f"{{{BPMN_NS}}}manualTask"):
            element_id = node.get("id", "")
            groups = _camunda(node, "candidateGroups")
            assigned, refused = assignment.expressions(node)
            if "candidateGroups" in assigned:
                roles = []
            elif groups:
                roles = list(names_listed(groups))
            elif lanes.get(element_id):
                roles = [role_id(lanes[element_id])]
            else:
                roles = []
            props = properties_of(node)
            raw_priority = _camunda(node, "priority") or props.get("priority") or "50"
            try:
                priority = int(raw_priority)
            except ValueError:
                priority = 50
            found.append(
                UserTaskInfo(
                    process_id=process.get("id", ""),
                    element_id=element_id,
                    name=node.get("name"),
                    roles=roles,
                    form_key=form_key_of(node),
                    properties=props,
                    priority=priority,
                    assignment=assigned,
                    assignment_problems=refused,
                )
            )
    return found


def business_timers(root: etree._Element, process_id: str) -> list[str]:
    """Timer events of a process that count business time (camunda property
    ``calendar`` = ``business``): their durations skip nights, weekends and holidays."""
    found: list[str] = []
    for process in root.xpath("./bpmn:process", namespaces=NS):
        if process.get("id") != process_id:
            continue
        for node in process.iter(
            f"{{{BPMN_NS}}}boundaryEvent", f"{{{BPMN_NS}}}intermediateCatchEvent"
        ):
            if properties_of(node).get("calendar") == "business":
                found.append(node.get("id", ""))
    return found


def process_ids(root: etree._Element) -> list[tuple[str, str | None]]:
    return [(p.get("id", ""), p.get("name")) for p in root.xpath("./bpmn:process", namespaces=NS)]


def element_ids(root: etree._Element, process_id: str) -> set[str]:
    """The ids of every element in a process (its subprocesses' too)."""
    found = root.xpath("./bpmn:process[@id=$pid]//@id", namespaces=NS, pid=process_id)
    return {str(i) for i in found}


def called_elements(root: etree._Element) -> list[tuple[str, str]]:
    """(element id, called process id) of every call activity."""
    return [
        (node.get("id", ""), node.get("calledElement", ""))
        for node in root.iter(f"{{{BPMN_NS}}}callActivity")
    ]


def decision_refs(root: etree._Element) -> list[tuple[str, str]]:
    """(element id, decision id) of every business rule task."""
    return [
        (node.get("id", ""), _camunda(node, "decisionRef") or "")
        for node in root.iter(f"{{{BPMN_NS}}}businessRuleTask")
    ]


def decision_binding(root: etree._Element, element_id: str) -> str:
    """A business rule task's ``camunda:decisionRefBinding`` (``latest`` when left out)."""
    for node in root.iter(f"{{{BPMN_NS}}}businessRuleTask"):
        if node.get("id") == element_id:
            return _camunda(node, "decisionRefBinding") or "latest"
    return "latest"


def children(node: etree._Element, name: str) -> list[etree._Element]:
    """``node``'s child elements called ``name``, whatever their namespace (DMN has one
    per version)."""
    return [c for c in node if isinstance(c.tag, str) and etree.QName(c).localname == name]


def decisions(root: etree._Element) -> list[etree._Element]:
    """The decisions of a DMN document, in order."""
    return children(root, "decision")


def decision_ids(root: etree._Element) -> list[str]:
    return [d.get("id", "") for d in decisions(root)]

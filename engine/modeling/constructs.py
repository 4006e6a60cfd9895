"""What deploy does with each construct of a Camunda 7 diagram or decision table: it
runs with Camunda 7's meaning, or deploy refuses it naming the element and what to use
instead. Nothing deploys to be ignored, stuck or wrong.

``CONSTRUCTS`` is the table: docs/compatibility.md is written from it
(``tools/compat_table.py``) and a test keeps the two equal; each refused row has a test
in tests/compat/ that deploys a diagram using it and reads the refusal. Lint
(lint.py) asks ``refusals`` for every refused construct a file uses.

A row refused here is refused because Tradeflow does not run it yet as Camunda does:
issue 17 turns rows from REFUSED into RUNS, one at a time, each with its test.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from lxml import etree

from engine.modeling.diagrams import NS


class Status(StrEnum):
    RUNS = "runs"  # with Camunda 7's meaning, and a test shows it
    REFUSED = "refused"  # deploy refuses it, naming the element and what to use instead
    DIFFERS = "differs"  # runs, not quite as Camunda 7 does: said here, being fixed


Finder = Callable[[etree._Element], Iterator[etree._Element]]


@dataclass(frozen=True)
class Construct:
    key: str  # a short name for the row (tests/compat/ names its cases by it)
    what: str  # how a Camunda user names it
    status: Status
    note: str  # RUNS / DIFFERS: what happens; REFUSED: what to use instead
    find: Finder | None = None  # REFUSED, DIFFERS: the nodes that use it
    kind: str = "bpmn"  # the files it is looked for in: "bpmn" or "dmn"


def _xpath(expression: str) -> Finder:
    def find(root: etree._Element) -> Iterator[etree._Element]:
        yield from root.xpath(expression, namespaces=NS)

    return find


def _events(definition: str, where: str = "") -> Finder:
    """Events (of kinds ``where``, e.g. 'bpmn:boundaryEvent') with that definition."""
    kinds = where or "*"
    return _xpath(f"//{kinds}[bpmn:{definition}]")


_CAMUNDA_ATTRIBUTE = "//*[@camunda:{0}]"
_EXTENSION = "//camunda:{0}/ancestor::*[@id][1]"
_DMN = "{*}"  # DMN's namespaces vary by version: any


def _dmn(path: str) -> Finder:
    def find(root: etree._Element) -> Iterator[etree._Element]:
        yield from root.iterfind(path)

    return find


_BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
_TRUE = ("true", "1")


def _event_subprocesses(root: etree._Element) -> Iterator[etree._Element]:
    for node in root.iter(f"{_BPMN}subProcess"):
        if node.get("triggeredByEvent") in _TRUE:
            yield node


_COUNTERS = re.compile(r"\bnrOf(Instances|CompletedInstances|ActiveInstances)\b")


def _counters(root: etree._Element) -> Iterator[etree._Element]:
    for node in root.iter(f"{_BPMN}completionCondition"):
        if _COUNTERS.search(node.text or ""):
            yield _owner(node)


def _owner(node: etree._Element) -> etree._Element:
    """The nearest element with an id (the activity a loop's condition belongs to)."""
    for ancestor in node.iterancestors():
        if ancestor.get("id"):
            return ancestor
    return node


def _passes_all(call: etree._Element) -> bool:
    """A call activity that says it passes every variable both ways, as it runs here."""
    kinds = {etree.QName(m).localname for m in _mappings(call) if m.get("variables") == "all"}
    return kinds == {"in", "out"}


def _mappings(call: etree._Element) -> list[etree._Element]:
    found: list[etree._Element] = call.xpath(
        "./bpmn:extensionElements/camunda:in | ./bpmn:extensionElements/camunda:out",
        namespaces=NS,
    )
    return found


def _calls_passing_all_unsaid(root: etree._Element) -> Iterator[etree._Element]:
    for call in root.iter(f"{_BPMN}callActivity"):
        if not _passes_all(call):
            yield call


def _call_mappings(root: etree._Element) -> Iterator[etree._Element]:
    """Mappings other than ``variables="all"`` (the one way variables pass here)."""
    for call in root.iter(f"{_BPMN}callActivity"):
        if any(m.get("variables") != "all" or len(m.attrib) > 1 for m in _mappings(call)):
            yield call


def _no_decision(root: etree._Element) -> Iterator[etree._Element]:
    if next(root.iter(f"{_DMN}decision"), None) is None:
        yield root


def _no_table(root: etree._Element) -> Iterator[etree._Element]:
    for decision in root.iter(f"{_DMN}decision"):
        if decision.find(f"{_DMN}decisionTable") is None and (
            decision.find(f"{_DMN}literalExpression") is None
        ):
            yield decision


R, REF, D = Status.RUNS, Status.REFUSED, Status.DIFFERS

CONSTRUCTS: tuple[Construct, ...] = (
    # -- what runs (each with its tests, named in the note) -----------------------------
    Construct("user-task", "user task with `camunda:candidateGroups` naming role ids", R,
              "a task in those roles' queues"),
    Construct("assignment", "`camunda:assignee`, `camunda:candidateUsers`, "
              "`camunda:candidateGroups` as an expression, `camunda:priority` as an "
              "expression, `camunda:dueDate`", R,
              "evaluated when the task is created, a literal or `${…}` (JUEL): the assignee "
              "has the task claimed, candidate users may claim it as a role's holders may, "
              "groups must come out as role ids, a priority as a whole number 0..100, a due "
              "date as ISO 8601 (a date-time without a zone is UTC; a duration counts from "
              "the task's creation). A value that can't serve fails the command naming the "
              "element and the attribute"),
    Construct("initiator", "`camunda:initiator` on a start event", R,
              "the variable it names holds the name of the user who started the instance"),
    Construct("script-task", "script task (Python-style script)", R,
              "run by the safe evaluator within the command's budget"),
    Construct("business-rule-task", "business rule task with `camunda:decisionRef`, "
              "`decisionRefBinding` latest (the default) or deployment", R,
              "latest: the decision's newest deployed version when the task runs, so a table "
              "deployed on its own decides the next decisions; deployment: the version "
              "deployed with the process (its .dmn file must be in the same deployment)"),
    Construct("call-activity", "call activity (`calledElement`)", D,
              "calls the deployed process; it passes every variable in and out, where "
              "Camunda passes none without `camunda:in`/`camunda:out`: say so with "
              '`<camunda:in variables="all"/>` and `<camunda:out variables="all"/>` and '
              "this warning goes", _calls_passing_all_unsaid),
    Construct("call-activity-all", 'call activity with `camunda:in variables="all"` and '
              '`camunda:out variables="all"`', R,
              "every variable passes in, and back out when the called process ends. It "
              "starts the version of the called process that was latest when the caller "
              "was deployed (Camunda: latest at the call); deploying a new version of a "
              "called process warns, naming each caller that keeps the old one"),
    Construct("subprocess", "embedded subprocess", R, "runs as drawn"),
    Construct("gateways", "exclusive, parallel, inclusive and event-based gateways", R,
              "runs as drawn"),
    Construct("timers", "timer start, intermediate and boundary events", R,
              "ISO 8601 durations, dates and cycles; business-time durations"),
    Construct("message-catch", "message intermediate catch and boundary events", R,
              "`POST /api/v1/messages`; kept until the instance waits"),
    Construct("boundary-events", "interrupting and non-interrupting boundary events", R,
              "timer, message and error"),
    Construct("error-events", "error end event and error boundary event", R,
              "the error is caught by the boundary event of the same code"),
    Construct("multi-instance", "parallel and sequential multi-instance with "
              "`loopCardinality`", R, "runs as drawn"),
    Construct("none-events", "none intermediate throw events (milestones)", R,
              "passed through"),
    Construct("conditional-catch", "conditional intermediate catch event", R,
              "waits until its condition holds after a command"),
    Construct("plain-task", "task without a type (`bpmn:task`)", R,
              "passes the token straight on, as in Camunda"),
    Construct("link-events", "link throw and catch events", R,
              "the token goes on at the catch event of the same name in the same process or "
              "subprocess; a throw without its catch is refused naming it"),
    Construct("implicit-end", "a path that ends without an end event", R,
              "the token ends there; the instance ends when no token is left, as in Camunda"),
    Construct("juel", "JUEL in `${…}` or `#{…}`: conditions, conditional events, timers, "
              "multi-instance counts and completion conditions", R,
              "translated into the safe evaluator (engine/modeling/juel.py): `true` `false` "
              "`null`, `!` `&&` `||` `not` `and` `or`, `eq` `ne` `lt` `gt` `le` `ge`, `div` "
              "`mod`, `empty`, `?:`, `a.b` and `a[k]` (null for a key not in the map, an "
              "index past the list, a null base); a method call, a function, a bean or "
              "`execution` is refused at deploy naming the element; a Python-style "
              "expression that is not JUEL (`len(x)`, `in`) runs as before. Values are not "
              "converted as JUEL converts them: `\"1\" == 1` is false, `+` joins text, and "
              "null in arithmetic or `<` is an error, not 0"),
    # -- refused until they run as Camunda runs them ------------------------------------
    Construct("event-subprocess", "event subprocess (`triggeredByEvent`)", REF,
              "event subprocesses don't run here yet; use a boundary event on a "
              "subprocess or activity", _event_subprocesses),
    Construct("message-throw", "message intermediate throw and end events", REF,
              "nothing here sends messages yet; end with a none end event and let an "
              "integration read the instance's state", _xpath(
                  "//bpmn:intermediateThrowEvent[bpmn:messageEventDefinition]"
                  " | //bpmn:endEvent[bpmn:messageEventDefinition]")),
    Construct("message-start", "message start event", REF,
              "a message can't start an instance yet; start it with "
              "`POST /api/v1/instances`", _xpath("//bpmn:startEvent[bpmn:messageEventDefinition]")),
    Construct("receive-task", "receive task", REF,
              "receive tasks don't run here yet; use a message intermediate catch event",
              _xpath("//bpmn:receiveTask")),
    Construct("signal-events", "signal events (start, catch, throw, boundary)", REF,
              "signals don't run here yet; use a message, correlated by business key",
              _events("signalEventDefinition")),
    Construct("escalation-events", "escalation events", REF,
              "escalation events don't run here yet; use an error event, or the task's "
              "`escalateTo` property for a late task", _events("escalationEventDefinition")),
    Construct("compensation", "compensation (boundary, throw, compensation handlers)", REF,
              "compensation doesn't run here yet; model the undoing as its own path",
              _xpath("//*[bpmn:compensateEventDefinition] | //*[@isForCompensation='true']"
                     " | //*[@isForCompensation='1']")),
    Construct("conditional-boundary-start", "conditional boundary and start events", REF,
              "a conditional boundary or start event doesn't run here yet; use a "
              "conditional intermediate catch event on the path",
              _xpath("//bpmn:boundaryEvent[bpmn:conditionalEventDefinition]"
                     " | //bpmn:startEvent[bpmn:conditionalEventDefinition]")),
    Construct("data-associations", "data input and output associations", REF,
              "data associations don't run here yet; remove them (data objects alone "
              "are fine as documentation)",
              _xpath("//bpmn:dataInputAssociation/.. | //bpmn:dataOutputAssociation/..")),
    Construct("mi-collection", "multi-instance `camunda:collection` / `elementVariable`", REF,
              "a multi-instance over a collection doesn't run here yet; use "
              "`loopCardinality` and index the list in the task",
              _xpath("//bpmn:multiInstanceLoopCharacteristics[@camunda:collection"
                     " or @camunda:elementVariable]/..")),
    Construct("mi-counters", "`nrOfInstances`, `nrOfCompletedInstances`, `nrOfActiveInstances` "
              "in a completion condition", REF,
              "the `nrOf…` variables aren't set here yet; count in your own variables",
              _counters),
    Construct("input-output", "`camunda:inputOutput` (input and output parameters)", REF,
              "input/output mappings don't run here yet; set variables in a script task "
              "(on a message catch: list them in `messageVariables`)",
              _xpath(_EXTENSION.format("inputOutput"))),
    Construct("listeners", "execution and task listeners", REF,
              "listeners don't run here; use a script task on the path",
              _xpath(_EXTENSION.format("executionListener")
                     + " | " + _EXTENSION.format("taskListener"))),
    Construct("call-mappings", "call activity `camunda:in` / `camunda:out` other than "
              '`variables="all"`', REF,
              "variable mappings of a call activity don't run here yet; the called process "
              'gets and gives back every variable (say so with variables="all")',
              _call_mappings),
    Construct("java", "`camunda:class`, `camunda:delegateExpression`, `camunda:expression`", REF,
              "Java delegates and expressions can't run here; use a user task, or a "
              "message handled by an integration", _xpath(
                  "//*[@camunda:class or @camunda:delegateExpression or @camunda:expression]")),
    Construct("follow-up-date", "`camunda:followUpDate`", REF,
              "follow-up dates aren't kept here yet; use `camunda:dueDate`, or the `sla` "
              "property (docs/time-limits.md)", _xpath(_CAMUNDA_ATTRIBUTE.format("followUpDate"))),
    Construct("form-data", "`camunda:formData` (generated forms)", REF,
              "generated task forms aren't shown here; use a Camunda Form "
              "(`camunda:formRef`)", _xpath(_EXTENSION.format("formData"))),
    Construct("script-format", "script tasks in a language other than Python "
              "(`scriptFormat` groovy, javascript, …)", REF,
              "scripts are Python-style here; rewrite the script and set scriptFormat to "
              "python (or leave it out)",
              _xpath("//bpmn:scriptTask[@scriptFormat and translate(@scriptFormat, "
                     "'PYTHON', 'python') != 'python']")),
    Construct("script-resource", "script from a resource (`camunda:resource`)", REF,
              "the script must be written in the task here", _xpath("//*[@camunda:resource]")),
    Construct("error-variables", "`camunda:errorCodeVariable`, `camunda:errorMessageVariable`",
              REF, "the error's code and message aren't put in variables yet; branch on "
              "one boundary event per error code", _xpath(
                  "//*[@camunda:errorCodeVariable or @camunda:errorMessageVariable]")),
    Construct("bindings", "`calledElementBinding` other than latest; `decisionRefBinding` "
              "version or versionTag", REF,
              "a call always takes the called process's latest version here, and a decision "
              "its latest or its deployment's; leave the binding out",
              _xpath("//*[(@camunda:calledElementBinding and @camunda:calledElementBinding != "
                     "'latest') or (@camunda:decisionRefBinding and not("
                     "@camunda:decisionRefBinding = 'latest' or "
                     "@camunda:decisionRefBinding = 'deployment'))]")),
    Construct("service-send", "service task, send task", REF,
              "nothing here calls out of the engine or sends yet; use a user task, or a "
              "message handled by an integration", _xpath("//bpmn:serviceTask | //bpmn:sendTask")),
    Construct("transaction", "transaction subprocess", REF,
              "transactions don't run here; use an embedded subprocess",
              _xpath("//bpmn:transaction")),
    Construct("ad-hoc", "ad-hoc subprocess", REF, "ad-hoc subprocesses don't run here",
              _xpath("//bpmn:adHocSubProcess")),
    Construct("complex-gateway", "complex gateway", REF,
              "complex gateways don't run here; use an inclusive gateway",
              _xpath("//bpmn:complexGateway")),
    # -- decision tables -----------------------------------------------------------------
    Construct("dmn-hit-policies", "decision tables with every hit policy: UNIQUE (the "
              "default), FIRST, ANY, PRIORITY, RULE ORDER, OUTPUT ORDER, COLLECT and COLLECT "
              "SUM, MIN, MAX, COUNT", R,
              "as DMN defines them: UNIQUE and ANY fail the task, naming the rules, when "
              "several rules match (ANY: with different outputs); PRIORITY and OUTPUT ORDER "
              "order by the output's listed values (`outputValues`), highest first, and "
              "deploy refuses them without; an aggregation takes one output. Camunda 7 "
              "itself runs all but PRIORITY and OUTPUT ORDER"),
    Construct("dmn-feel", "FEEL in input cells, input expressions, output cells and literal "
              "expressions", R,
              "translated when the file is read (engine/modeling/feel.py): unary tests "
              '(`"a","b"`, `not(…)`, `[1..10]`, `(1..10[`, `< x`, `-`, `null`, `true`), '
              "literals, names and `a.b` paths, arithmetic, `=` `!=` `<` `<=` `>` `>=`, "
              "`and` `or` `not()`, `between`, `if … then … else`, `date(\"…\")` and "
              "`date and time(\"…\")` (ISO text, which orders as the date does). Ordering "
              "null or text against a number is false, as FEEL answers. FEEL's built-in "
              "functions, contexts, filters, `for`/`some`/`every` and names with spaces are "
              "refused naming the rule; a cell FEEL doesn't read is read Python-style, as "
              "before (`1 < ? < 5`, `in [\"A\", \"B\"]`)"),
    Construct("dmn-decisions", "several decisions in one file, required decisions (DRD), "
              "literal-expression decisions", R,
              "each decision of a file is deployed in versions of its own; a decision "
              "evaluates the decisions it requires first and reads their outputs by name "
              "(a list of values where several rules answered); a literal expression "
              "answers its variable"),
    Construct("dmn-result-variable", "`camunda:resultVariable` with `camunda:mapDecisionResult` "
              "resultList (the default), singleResult, singleEntry, collectEntries", R,
              "the result variable is set as Camunda sets it, and the task fails, naming the "
              "mapping, where the results don't fit it. Without a result variable each "
              "output becomes a variable of its own name (a list where several rules "
              "answered), where Camunda keeps the result nowhere"),
    Construct("dmn-no-decision", "a decision file without a decision", REF,
              "a .dmn file must hold a decision", _no_decision, kind="dmn"),
    Construct("dmn-no-table", "a decision that is neither a table nor a literal expression "
              "(a context, a function, …)", REF,
              "only decision tables and literal expressions run here; write it as a table",
              _no_table, kind="dmn"),
)  # fmt: skip


def refusals(root: etree._Element, kind: str) -> Iterator[tuple[str | None, str]]:
    """(element id, sentence) for each use of a refused construct in a file of ``kind``
    ("bpmn" or "dmn")."""
    for construct, element in _uses(root, Status.REFUSED, kind):
        yield element, refusal(construct)


def refusal(construct: Construct) -> str:
    """The sentence deploy answers for a refused construct (no Markdown)."""
    return f"not supported here: {construct.what}; {construct.note}".replace("`", "")


def differences(root: etree._Element, kind: str) -> Iterator[str]:
    """A sentence for each use of a construct that runs, but not quite as Camunda 7
    runs it, in a file of ``kind``: deploy answers them as warnings."""
    for construct, element in _uses(root, Status.DIFFERS, kind):
        yield f"{element}: {construct.what}: {construct.note}".replace("`", "")


def _uses(
    root: etree._Element, status: Status, kind: str
) -> Iterator[tuple[Construct, str | None]]:
    """Each element (by id, or its nearest owner's) using a construct of ``status``,
    once per construct."""
    for construct in CONSTRUCTS:
        if construct.status != status or construct.find is None or construct.kind != kind:
            continue
        seen: set[int] = set()
        for node in construct.find(root):
            if id(node) not in seen:
                seen.add(id(node))
                yield construct, node.get("id") or _owner(node).get("id")


__all__ = ["CONSTRUCTS", "Construct", "Status", "differences", "refusal", "refusals"]

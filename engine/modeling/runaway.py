"""Deploy-time refusal of diagrams that would run on for ever without waiting.

Every command runs on a budget (engine/execution/limits.py), so nothing can hang the service; but
what lint can see for certain is refused at deploy, where the process owner can fix it,
instead of failing each instance later:

* a call activity that calls its own process again (directly or through other processes)
  with no wait state on the way from the process's start: each round starts the next at
  once, in the same command, for ever;
* a standard loop whose ``loopCondition`` is always true and that has no ``loopMaximum``:
  it never ends (with a task that waits it asks people for ever, without one it spins).

Standard loops are kept otherwise: BPMN defines them and SpiffWorkflow runs them as drawn
(Camunda 7 does not run them at all). A loop whose condition depends on the data is
stopped by the budget if it never waits.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field

from lxml import etree
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

from engine.errors import ExpressionRefused, Problem
from engine.execution import TIMER_VAR, check_expression, evaluate_expression
from engine.modeling import diagrams
from engine.modeling.diagrams import BPMN_NS, NS

# what holds a token until something from outside happens
_WAITING_TASKS = {"userTask", "manualTask", "receiveTask", "eventBasedGateway"}
_WAITING_DEFINITIONS = {
    "messageEventDefinition",
    "timerEventDefinition",
    "signalEventDefinition",
    "conditionalEventDefinition",
}
_CATCHING = {"intermediateCatchEvent", "boundaryEvent", "startEvent"}
_SCOPES = {"subProcess", "transaction", "adHocSubProcess"}


def _local(node: etree._Element) -> str:
    return etree.QName(node).localname if isinstance(node.tag, str) else ""


def waits(node: etree._Element) -> bool:
    """Does a token stop at this element until a person, a message or time moves it?"""
    tag = _local(node)
    if tag in _WAITING_TASKS:
        return True
    if tag in _CATCHING:
        return any(_local(child) in _WAITING_DEFINITIONS for child in node)
    return False


@dataclass
class _Process:
    """One process's flow graph, enough to tell what runs before anything waits."""

    file: str
    element: etree._Element
    nodes: dict[str, etree._Element] = field(default_factory=dict)
    edges: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def read(cls, file: str, process: etree._Element) -> _Process:
        graph = cls(file, process)
        links: dict[str, list[str]] = {}  # link name -> catching events
        throws: list[tuple[str, str]] = []
        for node in process.iter():
            node_id = node.get("id")
            if not node_id or node is process:
                continue
            tag = _local(node)
            graph.nodes[node_id] = node
            if tag == "sequenceFlow":
                graph._edge(node.get("sourceRef", ""), node.get("targetRef", ""))
            elif tag == "boundaryEvent":
                graph._edge(node.get("attachedToRef", ""), node_id)
            elif tag in _SCOPES:
                for child in node:  # a subprocess starts at its start events
                    if _local(child) == "startEvent" and child.get("id"):
                        graph._edge(node_id, child.get("id", ""))
            for link in node.xpath("./bpmn:linkEventDefinition", namespaces=NS):
                if tag == "intermediateThrowEvent":
                    throws.append((node_id, link.get("name", "")))
                elif tag == "intermediateCatchEvent":
                    links.setdefault(link.get("name", ""), []).append(node_id)
        for node_id, name in throws:
            for target in links.get(name, []):
                graph._edge(node_id, target)
        # a subprocess goes on along its own flows once its inside has ended
        for scope in (n for n in graph.nodes.values() if _local(n) in _SCOPES):
            after = graph.edges.get(scope.get("id", ""), [])
            outgoing = [t for t in after if _local(graph.nodes.get(t, scope)) != "startEvent"]
            for child in scope:
                if _local(child) == "endEvent" and child.get("id"):
                    for target in outgoing:
                        graph._edge(child.get("id", ""), target)
        return graph

    def _edge(self, source: str, target: str) -> None:
        self.edges.setdefault(source, []).append(target)

    def before_waiting(self, finishes: Callable[[str], bool]) -> set[str]:
        """Elements a token reaches from the process's start without waiting anywhere.
        A subprocess is left through its end events, a call activity only if the process
        it calls can end without waiting (``finishes``)."""
        starts = [
            child.get("id", "")
            for child in self.element
            if _local(child) == "startEvent" and child.get("id")
        ]
        seen: set[str] = set()
        stack = [s for s in starts if not waits(self.nodes[s])]
        while stack:
            node_id = stack.pop()
            if node_id in seen:
                continue
            seen.add(node_id)
            node = self.nodes[node_id]
            tag = _local(node)
            for target in self.edges.get(node_id, []):
                following = self.nodes.get(target)
                if following is None or waits(following):
                    continue
                if _local(following) != "boundaryEvent":
                    if tag in _SCOPES and target not in self._inner_starts(node):
                        continue  # left through the scope's end events
                    if tag == "callActivity" and not finishes(node.get("calledElement", "")):
                        continue
                stack.append(target)
        return seen

    def _inner_starts(self, scope: etree._Element) -> set[str]:
        return {c.get("id", "") for c in scope if _local(c) == "startEvent"}

    def ends(self) -> set[str]:
        return {c.get("id", "") for c in self.element if _local(c) == "endEvent"}


class _Calls:
    """The processes of a deployment and those it calls (read from what is deployed)."""

    def __init__(
        self, bundle: dict[str, etree._Element], deployed: Callable[[str], bytes | None]
    ) -> None:
        self.graphs: dict[str, _Process | None] = {}
        for name, root in bundle.items():
            for process in root.xpath("./bpmn:process", namespaces=NS):
                self.graphs[process.get("id", "")] = _Process.read(name, process)
        self.deployed = deployed
        self._finishes: dict[str, bool] = {}
        self._immediate: dict[str, list[tuple[str, str]]] = {}

    def graph(self, process_id: str) -> _Process | None:
        if process_id not in self.graphs:
            found = None
            stored = self.deployed(process_id) if process_id else None
            if stored is not None:
                root = diagrams.parse_xml(stored)
                for process in root.xpath("./bpmn:process", namespaces=NS):
                    if process.get("id") == process_id:
                        found = _Process.read("(deployed)", process)
            self.graphs[process_id] = found
        return self.graphs[process_id]

    def finishes(self, process_id: str) -> bool:
        """Can a call of this process end without waiting? (Unknown or recursive: no.)"""
        if process_id not in self._finishes:
            self._finishes[process_id] = False  # while it is being found out
            found = self.graph(process_id)
            self._finishes[process_id] = found is not None and bool(
                found.ends() & found.before_waiting(self.finishes)
            )
        return self._finishes[process_id]

    def immediate(self, process_id: str) -> list[tuple[str, str]]:
        """(call activity, called process) of the calls a process makes before waiting."""
        if process_id not in self._immediate:
            found = self.graph(process_id)
            reached = found.before_waiting(self.finishes) if found is not None else set()
            self._immediate[process_id] = [
                (node_id, found.nodes[node_id].get("calledElement", ""))
                for node_id in sorted(reached)
                if found is not None
                and _local(found.nodes[node_id]) == "callActivity"
                and found.nodes[node_id].get("calledElement")
            ]
        return self._immediate[process_id]


def self_calls(
    bundle: dict[str, etree._Element], deployed_processes: Callable[[str], bytes | None]
) -> list[Problem]:
    """Call activities of the deployment that lead back to their own process without
    a wait state on the way: each names the round it would run for ever."""
    calls = _Calls(bundle, deployed_processes)
    ours = {pid: graph for pid, graph in calls.graphs.items() if graph is not None}
    problems: list[Problem] = []
    for process_id in sorted(ours):
        for element, called in calls.immediate(process_id):
            path = _path_back(called, process_id, calls.immediate)
            if path is None:
                continue
            rounds = " → ".join([process_id, *path])
            problems.append(
                Problem(
                    f"calls process '{called}', which comes back here ({rounds}) without a "
                    "wait state on the way: each round would start the next at once, for "
                    "ever. Put a user task or a catch event (message, timer) before the "
                    "call, or model the repetition as a loop with a wait state",
                    ours[process_id].file,
                    element,
                )
            )
    return problems


def _path_back(
    start: str, goal: str, calls_of: Callable[[str], list[tuple[str, str]]]
) -> list[str] | None:
    """The processes from ``start`` to ``goal`` through calls made before any wait."""
    came_from: dict[str, str | None] = {start: None}
    queue = [start]
    while queue:
        current = queue.pop(0)
        if current == goal:
            path = [current]
            while (previous := came_from[path[-1]]) is not None:
                path.append(previous)
            return path[::-1]
        for _, called in calls_of(current):
            if called not in came_from:
                came_from[called] = current
                queue.append(called)
    return None


def endless_loops(name: str, root: etree._Element) -> list[Problem]:
    """Standard loops whose condition is always true and that have no loopMaximum."""
    problems: list[Problem] = []
    for loop in root.iter(f"{{{BPMN_NS}}}standardLoopCharacteristics"):
        if loop.get("loopMaximum") is not None:
            continue
        conditions = loop.xpath("./bpmn:loopCondition", namespaces=NS)
        if not conditions or not _always_true(conditions[0].text or ""):
            continue
        owner = loop.getparent()
        problems.append(
            Problem(
                "the standard loop's loopCondition is always true and it has no "
                "loopMaximum: it would never end. Make the condition depend on the data "
                "(the activity repeats while it is true), give a loopMaximum, or use a "
                "multi-instance activity or a gateway loop through a wait state",
                name,
                owner.get("id") if owner is not None else None,
            )
        )
    return problems


def _always_true(text: str) -> bool:
    """True for a condition that reads no data and evaluates to something true."""
    try:
        tree = check_expression(text.strip())
    except ExpressionRefused:
        return False  # reported by the expression lint
    if any(isinstance(node, (ast.Name, ast.Call)) for node in ast.walk(tree)):
        return False
    try:
        return bool(evaluate_expression(text.strip(), {}))
    except Exception:  # an error is found when it runs; lint's other checks may see it
        return False


# a loop must pass one of these: SpiffWorkflow plans ahead through every other element,
# and round a loop without one it plans for ever (a RecursionError at the start)
_LOOP_BREAKERS = {"exclusiveGateway", "inclusiveGateway", "eventBasedGateway"}
_SECONDS = {"years": 365 * 86400, "months": 30 * 86400, "weeks": 7 * 86400, "days": 86400}
_SECONDS |= {"hours": 3600, "minutes": 60, "seconds": 1}


def flow_loops(name: str, root: etree._Element, min_interval: float) -> list[Problem]:
    """Loops drawn with sequence flows that the engine cannot run, or that would flood
    the service: one that passes no exclusive, inclusive or event-based gateway, and a
    timer on a loop that waits a fixed date (due at once in every round after the first)
    or less than the minimum interval between two timer rounds."""
    problems: list[Problem] = []
    for process in root.xpath("./bpmn:process", namespaces=NS):
        nodes = {n.get("id", ""): n for n in process.iter() if n.get("id")}
        flows = [
            (f.get("sourceRef", ""), f.get("targetRef", ""))
            for f in process.iter(f"{{{BPMN_NS}}}sequenceFlow")
        ]
        for loop in _cycles(flows):
            if not any(_local(nodes[n]) in _LOOP_BREAKERS for n in loop if n in nodes):
                problems.append(
                    Problem(
                        f"the loop through {', '.join(loop)} passes no exclusive, inclusive "
                        "or event-based gateway: SpiffWorkflow plans ahead round such a loop "
                        "for ever and no instance could start. Route the flow back through "
                        "an exclusive gateway",
                        name,
                        loop[0],
                    )
                )
        # a boundary timer of a task on a loop fires again in each round
        attached = [
            (n.get("attachedToRef", ""), node_id)
            for node_id, n in nodes.items()
            if _local(n) == "boundaryEvent"
        ]
        on_loops = {n for loop in _cycles(flows + attached) for n in loop}
        for node_id in sorted(on_loops):
            why = _too_soon(nodes.get(node_id), min_interval)
            if why:
                problems.append(Problem(f"this timer is on a loop and {why}", name, node_id))
    return problems


def _too_soon(node: etree._Element | None, min_interval: float) -> str | None:
    if node is None:
        return None
    for tag in ("timeDate", "timeDuration"):
        for found in node.xpath(f"./bpmn:timerEventDefinition/bpmn:{tag}", namespaces=NS):
            value = timer_literal(found.text or "")
            if value is None:
                continue
            if tag == "timeDate":
                return (
                    f"waits for a fixed date ({value}): after the first round it is due at "
                    "once, round after round. Use a timeDuration, or a date computed from "
                    "the data"
                )
            try:
                parts = TimerEventDefinition.parse_time_or_duration(value)
            except Exception:  # a malformed value: the expression check reports it
                continue
            if not isinstance(parts, dict):
                continue
            seconds = sum(_SECONDS.get(k, 0) * float(v) for k, v in parts.items())
            if seconds < min_interval:
                return (
                    f"waits {value}, less than the minimum interval of {min_interval:g} s "
                    f"between two timer rounds ({TIMER_VAR}): a loop of such waits would "
                    "flood the service. Wait longer"
                )
    return None


def timer_literal(text: str) -> str | None:
    """A timer's value when the diagram writes it as a quoted literal; None when it is
    computed from the data."""
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return None  # computed from the data: bounded when it runs (runtime/settle.py)
    return value if isinstance(value, str) else None


def _cycles(edges: list[tuple[str, str]]) -> list[list[str]]:
    """The elements of each loop (strongly connected component with a cycle), sorted;
    Tarjan's algorithm, iterative (a diagram may be long)."""
    graph: dict[str, list[str]] = {}
    for source, target in edges:
        graph.setdefault(source, []).append(target)
        graph.setdefault(target, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                if len(members) > 1 or node in graph[node]:
                    found.append(sorted(members))
    return found

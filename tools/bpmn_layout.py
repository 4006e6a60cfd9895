"""Regenerate the diagram (BPMN DI) of BPMN files: one pool, its lanes, a left-to-right flow.

Usage:
    .venv/bin/python tools/bpmn_layout.py bpmn/foo.bpmn [more files]
    .venv/bin/python tools/bpmn_layout.py --check bpmn/*.bpmn   # exit 1 if a layout is stale

Each file is rewritten in place: every bpmndi:BPMNDiagram goes and one new diagram takes the
place of the first (or ends bpmn:definitions). Everything else keeps its bytes, so a diff shows
only the diagram; the one exception is a process without a bpmn:collaboration, which gets one
(lanes are drawn inside a pool).

Layout: a depth-first search from the start events sets the loops' back edges aside; the
remaining flows give each node a column (longest path from a start). A node sits in its lane,
in the first row of that lane free in its column, preferring its predecessor's row; boundary
events sit on their host's bottom edge and their targets a row lower. Edges are orthogonal:
right edge to left edge, vertical runs in the gaps between columns, loops over (or under) the
rows; of a few candidate routes the one crossing the fewest shapes wins.
"""

from __future__ import annotations

import argparse
import copy
import heapq
import itertools
import re
import sys
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
DC = "http://www.omg.org/spec/DD/20100524/DC"
DI = "http://www.omg.org/spec/DD/20100524/DI"
# Prefixes for DI namespaces the root element does not declare.
USUAL_PREFIXES = {BPMNDI: "bpmndi", DC: "dc", DI: "di"}

EVENTS = frozenset(
    {"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"}
)
GATEWAYS = frozenset(
    {
        "exclusiveGateway",
        "parallelGateway",
        "eventBasedGateway",
        "inclusiveGateway",
        "complexGateway",
    }
)
ACTIVITIES = frozenset(
    {
        "task",
        "userTask",
        "manualTask",
        "scriptTask",
        "businessRuleTask",
        "serviceTask",
        "sendTask",
        "receiveTask",
        "callActivity",
    }
)
# Their content would need diagrams of its own.
UNSUPPORTED = frozenset({"subProcess", "transaction", "adHocSubProcess"})

POOL_X = 160
LANE_X = 190  # right of the pool's 30 px name column
POOL_Y = 80
MIN_LANE_WIDTH = 400
RIGHT_MARGIN = 50
FIRST_COLUMN_X = 280  # centre of column 0, clear of the lane's own 30 px name column
COLUMN_WIDTH = 150
FIRST_ROW_Y = 65  # centre of a lane's row 0, below the lane's top
ROW_PITCH = 110
LANE_MIN_HEIGHT = 130
BOUNDARY_LABEL_ROOM = 30  # below a last row whose tasks carry boundary events
CHANNEL = 55  # routes passing over or under a row run this far from its centre
BOUNDARY_DROP = 10  # a boundary event's flow first goes down this far
BOUNDARY_SPACING = 40
LABEL_GAP = 7
CHAR_WIDTH = 6
LINE_HEIGHT = 13
LABEL_CHARS = 15  # characters per label line, about 90 px

Point = tuple[int, int]


class LayoutError(Exception):
    """The file holds something this tool cannot lay out."""


# --- the model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    id: str
    tag: str
    name: str
    index: int  # document order, for deterministic tie-breaks
    host: str | None = None  # attachedToRef of a boundary event

    @property
    def size(self) -> tuple[int, int]:
        if self.tag in EVENTS:
            return 36, 36
        if self.tag in GATEWAYS:
            return 50, 50
        return 100, 80

    @property
    def has_outside_label(self) -> bool:
        # bpmn-js writes a task's name inside it; events and gateways take a label below.
        return bool(self.name) and self.tag not in ACTIVITIES


@dataclass(frozen=True)
class Flow:
    id: str
    source: str
    target: str
    name: str


@dataclass(frozen=True)
class Lane:
    id: str | None  # None: a process without lanes is drawn as one band with no lane shape
    members: tuple[str, ...]


@dataclass(frozen=True)
class Model:
    process_id: str
    process_name: str
    collaboration_id: str
    participant_id: str
    has_collaboration: bool
    nodes: dict[str, Node]
    flows: list[Flow]
    lanes: list[Lane]


def _q(tag: str) -> str:
    return f"{{{BPMN}}}{tag}"


def _required(element: etree._Element, attribute: str) -> str:
    value = element.get(attribute)
    if not value:
        tag = etree.QName(element).localname
        raise LayoutError(f"line {element.sourceline}: {tag} has no {attribute}")
    return value


def _find_process(root: etree._Element) -> etree._Element:
    processes = root.findall(_q("process"))
    chosen = [p for p in processes if p.get("isExecutable") == "true"] or processes
    if len(chosen) != 1:
        raise LayoutError(f"expected one executable bpmn:process, found {len(chosen)}")
    return chosen[0]


def _find_participant(root: etree._Element, process_id: str) -> tuple[str, str] | None:
    """The (collaboration, participant) ids, or None when the file has no collaboration."""
    collaborations = root.findall(_q("collaboration"))
    if not collaborations:
        return None
    participants = [p for c in collaborations for p in c.findall(_q("participant"))]
    if len(collaborations) > 1 or len(participants) != 1:
        raise LayoutError("the collaboration must hold exactly one participant")
    if participants[0].get("processRef") != process_id:
        raise LayoutError(f"the participant does not reference process {process_id}")
    return _required(collaborations[0], "id"), _required(participants[0], "id")


def _read_nodes(process: etree._Element) -> dict[str, Node]:
    nodes: dict[str, Node] = {}
    for index, child in enumerate(process):
        if not isinstance(child.tag, str) or etree.QName(child).namespace != BPMN:
            continue
        tag = etree.QName(child).localname
        if tag in UNSUPPORTED:
            raise LayoutError(f"line {child.sourceline}: bpmn:{tag} is not supported")
        if tag in EVENTS | GATEWAYS | ACTIVITIES:
            node_id = _required(child, "id")
            host = _required(child, "attachedToRef") if tag == "boundaryEvent" else None
            nodes[node_id] = Node(node_id, tag, child.get("name") or "", index, host)
    for node in nodes.values():
        if node.host is not None and (node.host not in nodes or nodes[node.host].host):
            raise LayoutError(f"boundary event {node.id} is attached to unknown {node.host}")
    return nodes


def _read_flows(process: etree._Element, nodes: dict[str, Node]) -> list[Flow]:
    flows = []
    for element in process.findall(_q("sequenceFlow")):
        flow = Flow(
            _required(element, "id"),
            _required(element, "sourceRef"),
            _required(element, "targetRef"),
            element.get("name") or "",
        )
        if flow.source not in nodes or flow.target not in nodes:
            raise LayoutError(f"sequence flow {flow.id} joins an unknown flow node")
        flows.append(flow)
    return flows


def _read_lanes(process: etree._Element, nodes: dict[str, Node]) -> list[Lane]:
    lanes = process.findall(f"{_q('laneSet')}/{_q('lane')}")
    if not lanes:
        return [Lane(None, ())]
    return [
        Lane(
            _required(lane, "id"),
            tuple(
                ref.text.strip()
                for ref in lane.findall(_q("flowNodeRef"))
                if ref.text and ref.text.strip() in nodes
            ),
        )
        for lane in lanes
    ]


def read_model(root: etree._Element) -> Model:
    process = _find_process(root)
    process_id = _required(process, "id")
    nodes = _read_nodes(process)
    found = _find_participant(root, process_id)
    collaboration_id, participant_id = found or (
        f"{process_id}_collaboration",
        f"{process_id}_participant",
    )
    return Model(
        process_id=process_id,
        process_name=process.get("name") or "",
        collaboration_id=collaboration_id,
        participant_id=participant_id,
        has_collaboration=found is not None,
        nodes=nodes,
        flows=_read_flows(process, nodes),
        lanes=_read_lanes(process, nodes),
    )


def boundary_events(model: Model) -> dict[str, list[str]]:
    """Each host's boundary events, in document order (their order along its bottom edge)."""
    events: dict[str, list[str]] = {}
    for node in model.nodes.values():
        if node.host is not None:
            events.setdefault(node.host, []).append(node.id)
    return events


# --- columns: back edges and longest-path ranks --------------------------------------------

# (sequence flow id, or None for the host -> boundary event tie; target node)
Arc = tuple[str | None, str]


def _arcs(model: Model) -> dict[str, list[Arc]]:
    """Outgoing arcs; a host leads to its boundary events so their targets rank after it."""
    arcs: dict[str, list[Arc]] = {node_id: [] for node_id in model.nodes}
    for flow in model.flows:
        arcs[flow.source].append((flow.id, flow.target))
    for node in model.nodes.values():
        if node.host is not None:
            arcs[node.host].append((None, node.id))
    return arcs


def _dfs_roots(model: Model) -> list[str]:
    """Start events first, then other nodes without incoming flows, then whatever is left."""
    ordered = list(model.nodes.values())
    targets = {flow.target for flow in model.flows}
    starts = [n.id for n in ordered if n.tag == "startEvent"]
    sources = [n.id for n in ordered if n.id not in targets and n.host is None]
    return starts + sources + [n.id for n in ordered]


def find_back_edges(model: Model) -> set[str]:
    """Flows that close a loop: they reach a node still on the depth-first search's stack."""
    arcs = _arcs(model)
    on_stack: dict[str, bool] = {}  # visited nodes; True while on the stack
    back: set[str] = set()
    for root in _dfs_roots(model):
        if root in on_stack:
            continue
        on_stack[root] = True
        stack: list[tuple[str, Iterator[Arc]]] = [(root, iter(arcs[root]))]
        while stack:
            node_id, pending = stack[-1]
            arc = next(pending, None)
            if arc is None:
                on_stack[node_id] = False
                stack.pop()
                continue
            flow_id, target = arc
            if target not in on_stack:
                on_stack[target] = True
                stack.append((target, iter(arcs[target])))
            elif on_stack[target] and flow_id is not None:
                back.add(flow_id)
    return back


def rank_nodes(model: Model, back: set[str]) -> dict[str, int]:
    """Longest path from the sources over forward arcs; a boundary event ranks with its host."""
    arcs = {n: [a for a in out if a[0] not in back] for n, out in _arcs(model).items()}
    indegree = dict.fromkeys(model.nodes, 0)
    for out in arcs.values():
        for _, target in out:
            indegree[target] += 1
    rank = dict.fromkeys(model.nodes, 0)
    ready = [(node.index, node.id) for node in model.nodes.values() if indegree[node.id] == 0]
    heapq.heapify(ready)
    while ready:
        _, node_id = heapq.heappop(ready)
        for flow_id, target in arcs[node_id]:
            rank[target] = max(rank[target], rank[node_id] + (flow_id is not None))
            indegree[target] -= 1
            if indegree[target] == 0:
                heapq.heappush(ready, (model.nodes[target].index, target))
    return rank


# --- rows within lanes -----------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    lane: int
    column: int
    row: int


class _Placer:
    """Gives every node a lane, a column and the first free row of that lane in that column."""

    def __init__(self, model: Model, ranks: dict[str, int], back: set[str]) -> None:
        self.model = model
        self.ranks = ranks
        self.listed: dict[str, int] = {}
        for lane_index, lane in enumerate(model.lanes):
            for member in lane.members:
                self.listed.setdefault(member, lane_index)
        forward = [flow for flow in model.flows if flow.id not in back]
        self.preds: dict[str, list[str]] = {node_id: [] for node_id in model.nodes}
        self.succs: dict[str, list[str]] = {node_id: [] for node_id in model.nodes}
        for flow in forward:
            self.preds[flow.target].append(flow.source)
            self.succs[flow.source].append(flow.target)
        # Position of each boundary event on its host, from the left.
        self.attached = {
            event: k for events in boundary_events(model).values() for k, event in enumerate(events)
        }
        self.slots: dict[str, Slot] = {}
        self.taken: set[tuple[int, int, int]] = set()

    def _order(self, node: Node) -> tuple[int, int, int]:
        """Rank first: predecessors rank lower. Then the targets of boundary events, the
        rightmost event's first: it takes the nearest row, so the events' flows do not cross."""
        positions = [self.attached[pred] for pred in self.preds[node.id] if pred in self.attached]
        return self.ranks[node.id], -max(positions, default=-1), node.index

    def place(self) -> dict[str, Slot]:
        nodes = self.model.nodes.values()
        for node in sorted(nodes, key=self._order):
            if node.host is None:
                self._place(node.id)
        for node in nodes:
            if node.host is not None:
                self.slots[node.id] = self.slots[node.host]
        return self.slots

    def _anchor(self, node_id: str) -> Slot:
        """Where a node sits; a boundary event sits on its host."""
        return self.slots[self.model.nodes[node_id].host or node_id]

    def _lane(self, node_id: str) -> int:
        if node_id in self.listed:
            return self.listed[node_id]
        if self.preds[node_id]:
            return self._anchor(self.preds[node_id][0]).lane
        listed_succs = [self.listed[s] for s in self.succs[node_id] if s in self.listed]
        return listed_succs[0] if listed_succs else 0

    def _preferred_row(self, node_id: str, lane: int) -> int:
        """A predecessor's row keeps edges straight; a boundary event's target goes a row down."""
        rows = []
        for pred in self.preds[node_id]:
            slot = self._anchor(pred)
            if slot.lane == lane:
                rows.append(slot.row + (self.model.nodes[pred].host is not None))
        return min(rows, default=0)

    def _place(self, node_id: str) -> None:
        lane, column = self._lane(node_id), self.ranks[node_id]
        row = self._preferred_row(node_id, lane)
        while (lane, column, row) in self.taken:
            row += 1
        self.taken.add((lane, column, row))
        self.slots[node_id] = Slot(lane, column, row)


# --- geometry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height

    @property
    def cx(self) -> int:
        return self.x + self.width // 2

    @property
    def cy(self) -> int:
        return self.y + self.height // 2

    def overlaps(self, other: Box) -> bool:
        return (
            self.x < other.right
            and other.x < self.right
            and self.y < other.bottom
            and other.y < self.bottom
        )

    def crossed_by(self, a: Point, b: Point) -> bool:
        """Whether the axis-parallel segment a-b passes through the inside of the box."""
        return (
            min(a[0], b[0]) < self.right
            and max(a[0], b[0]) > self.x
            and min(a[1], b[1]) < self.bottom
            and max(a[1], b[1]) > self.y
        )


def centred(cx: int, cy: int, size: tuple[int, int]) -> Box:
    return Box(cx - size[0] // 2, cy - size[1] // 2, size[0], size[1])


def column_x(column: int) -> int:
    return FIRST_COLUMN_X + COLUMN_WIDTH * column


def segments(points: Sequence[Point]) -> Iterator[tuple[Point, Point]]:
    return itertools.pairwise(points)


def simplify(points: Iterable[Point]) -> list[Point]:
    """Drops repeated points and points in the middle of a straight run."""
    kept: list[Point] = []
    for point in points:
        if kept and kept[-1] == point:
            continue
        if len(kept) >= 2 and (
            kept[-2][0] == kept[-1][0] == point[0] or kept[-2][1] == kept[-1][1] == point[1]
        ):
            kept[-1] = point
        else:
            kept.append(point)
    return kept


@dataclass
class Layout:
    model: Model
    slots: dict[str, Slot]
    back: set[str]
    lanes: list[Box] = field(default_factory=list)
    nodes: dict[str, Box] = field(default_factory=dict)
    edges: dict[str, list[Point]] = field(default_factory=dict)
    labels: dict[str, Box] = field(default_factory=dict)  # by node or flow id
    pool: Box = Box(0, 0, 0, 0)


def _lane_heights(layout: Layout) -> list[int]:
    model = layout.model
    rows = [1] * len(model.lanes)
    for slot in layout.slots.values():
        rows[slot.lane] = max(rows[slot.lane], slot.row + 1)
    hosts = [layout.slots[node.id] for node in model.nodes.values() if node.host is not None]
    roomy = {slot.lane for slot in hosts if slot.row == rows[slot.lane] - 1}
    return [
        LANE_MIN_HEIGHT + ROW_PITCH * (count - 1) + BOUNDARY_LABEL_ROOM * (lane in roomy)
        for lane, count in enumerate(rows)
    ]


def _place_lanes(layout: Layout) -> None:
    """Lane boxes stacked in laneSet order; their width is fixed once everything is placed."""
    y = POOL_Y
    for height in _lane_heights(layout):
        layout.lanes.append(Box(LANE_X, y, 0, height))
        y += height


def _place_nodes(layout: Layout) -> None:
    model = layout.model
    for node in model.nodes.values():
        if node.host is None:
            slot = layout.slots[node.id]
            cy = layout.lanes[slot.lane].y + FIRST_ROW_Y + ROW_PITCH * slot.row
            layout.nodes[node.id] = centred(column_x(slot.column), cy, node.size)
    for host_id, events in boundary_events(model).items():
        host = layout.nodes[host_id]
        # Two fit on the bottom edge; more are centred on it and overhang its sides.
        span = BOUNDARY_SPACING * (len(events) - 1) + 36
        first = host.x + 20 if len(events) <= 2 else host.cx - span // 2
        for k, event in enumerate(events):
            layout.nodes[event] = Box(first + BOUNDARY_SPACING * k, host.bottom - 18, 36, 36)


# --- edges ------------------------------------------------------------------------------------


class _Router:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.nodes = layout.model.nodes

    def _row_y(self, node_id: str) -> int:
        """The centre of the row a node (or a boundary event's host) sits in."""
        return self.layout.nodes[self.nodes[node_id].host or node_id].cy

    def _gaps(self, flow: Flow) -> tuple[int, int]:
        """The middle of the gap right of the source's column and of the one left of the
        target's: vertical runs there pass no shape."""
        source, target = self.layout.slots[flow.source], self.layout.slots[flow.target]
        half = COLUMN_WIDTH // 2
        return column_x(source.column) + half, column_x(target.column) - half

    def _forward(self, flow: Flow) -> list[list[Point]]:
        s, t = self.layout.nodes[flow.source], self.layout.nodes[flow.target]
        end = (t.x, t.cy)
        near_source, near_target = self._gaps(flow)
        if self.nodes[flow.source].host is not None:
            start, drop = (s.cx, s.bottom), s.bottom + BOUNDARY_DROP
            routes = [[start, (s.cx, t.cy), end]] if t.cy > s.bottom else []
            return routes + [
                [start, (s.cx, drop), (x, drop), (x, t.cy), end] for x in (near_target, near_source)
            ]
        start = (s.right, s.cy)
        routes = [[start, (x, s.cy), (x, t.cy), end] for x in (near_target, near_source)]
        for y in (s.cy - CHANNEL, s.cy + CHANNEL):  # around whatever sits in the row
            routes.append(
                [
                    start,
                    (near_source, s.cy),
                    (near_source, y),
                    (near_target, y),
                    (near_target, t.cy),
                    end,
                ]
            )
        return routes

    def _back(self, flow: Flow) -> list[list[Point]]:
        """Loops leave over the source and come down onto the target, or run under both."""
        s, t = self.layout.nodes[flow.source], self.layout.nodes[flow.target]
        near_source, near_target = self._gaps(flow)
        over = min(self._row_y(flow.source), self._row_y(flow.target)) - CHANNEL
        under = max(self._row_y(flow.source), self._row_y(flow.target)) + CHANNEL
        sx, tx = s.cx, t.cx
        if flow.source == flow.target:
            sx, tx = s.cx + s.width // 4, s.cx - s.width // 4
        if self.nodes[flow.source].host is not None:
            under = max(under, s.bottom + BOUNDARY_DROP)
            start = [(sx, s.bottom), (sx, under)]
            return [
                [*start, (tx, under), (tx, t.bottom)],
                [*start, (near_target, under), (near_target, t.cy), (t.x, t.cy)],
            ]
        return [
            [(sx, s.y), (sx, over), (tx, over), (tx, t.y)],
            [(sx, s.bottom), (sx, under), (tx, under), (tx, t.bottom)],
        ] + [
            [
                (s.right, s.cy),
                (near_source, s.cy),
                (near_source, y),
                (near_target, y),
                (near_target, t.cy),
                (t.x, t.cy),
            ]
            for y in (over, under)
        ]

    def route(self, flow: Flow) -> list[Point]:
        candidates = self._back(flow) if flow.id in self.layout.back else self._forward(flow)
        source, target = self.layout.nodes[flow.source], self.layout.nodes[flow.target]
        obstacles = [
            box
            for node_id, box in self.layout.nodes.items()
            if node_id not in (flow.source, flow.target)
        ]

        def crossings(points: list[Point]) -> int:
            # A route may only touch its source where it starts and its target where it ends.
            steps = list(segments(points))
            count = sum(box.crossed_by(a, b) for a, b in steps for box in obstacles)
            count += sum(source.crossed_by(a, b) for a, b in steps[1:])
            return count + sum(target.crossed_by(a, b) for a, b in steps[:-1])

        routes = [simplify(points) for points in candidates]
        return min(routes, key=crossings)  # min keeps the first of equals: the preferred one


# --- labels ------------------------------------------------------------------------------------


def label_size(text: str) -> tuple[int, int]:
    lines = textwrap.wrap(text, LABEL_CHARS) or [text]
    return max(len(line) for line in lines) * CHAR_WIDTH + 4, LINE_HEIGHT * len(lines) + 1


def _node_label_spots(shape: Box, size: tuple[int, int]) -> list[Box]:
    w, h = size
    below = shape.bottom + LABEL_GAP
    return [
        Box(shape.cx - w // 2, below, w, h),
        Box(shape.right - 4, below - 4, w, h),
        Box(shape.x - w + 4, below - 4, w, h),
        Box(shape.cx - w // 2, shape.y - LABEL_GAP - h, w, h),
    ]


def _edge_label_spots(points: list[Point], size: tuple[int, int]) -> list[Box]:
    """Beside the first segment: first on the side the route turns to."""
    w, h = size
    (x0, y0), (x1, y1) = points[0], points[1]
    if y0 == y1:
        x = x0 + 4 if x1 > x0 else x0 - 4 - w
        above, below = Box(x, y0 - 3 - h, w, h), Box(x, y0 + 3, w, h)
        turns_down = len(points) > 2 and points[2][1] > y0
        return [below, above] if turns_down else [above, below]
    y = y0 + 4 if y1 > y0 else y0 - 4 - h
    return [Box(x0 + 4, y, w, h), Box(x0 - 4 - w, y, w, h)]


def _place_labels(layout: Layout) -> None:
    """Each label takes the first of its spots that covers the fewest shapes, labels and lines."""
    lines = [seg for points in layout.edges.values() for seg in segments(points)]

    def clutter(spot: Box) -> int:
        covered = sum(spot.overlaps(box) for box in layout.nodes.values())
        covered += sum(spot.overlaps(box) for box in layout.labels.values())
        return 4 * covered + sum(spot.crossed_by(a, b) for a, b in lines)

    for node in layout.model.nodes.values():
        if node.has_outside_label:
            spots = _node_label_spots(layout.nodes[node.id], label_size(node.name))
            layout.labels[node.id] = min(spots, key=clutter)
    for flow in layout.model.flows:
        if flow.name:
            spots = _edge_label_spots(layout.edges[flow.id], label_size(flow.name))
            layout.labels[flow.id] = min(spots, key=clutter)


def _fit_pool(layout: Layout) -> None:
    """Lanes and pool wide enough for every shape, label and bend."""
    rights = [box.right for box in (*layout.nodes.values(), *layout.labels.values())]
    rights += [x for points in layout.edges.values() for x, _ in points]
    width = max(MIN_LANE_WIDTH, max(rights, default=0) + RIGHT_MARGIN - LANE_X)
    layout.lanes = [Box(LANE_X, lane.y, width, lane.height) for lane in layout.lanes]
    height = sum(lane.height for lane in layout.lanes)
    layout.pool = Box(POOL_X, POOL_Y, width + LANE_X - POOL_X, height)


def compute_layout(model: Model) -> Layout:
    back = find_back_edges(model)
    slots = _Placer(model, rank_nodes(model, back), back).place()
    layout = Layout(model, slots, back)
    _place_lanes(layout)
    _place_nodes(layout)
    router = _Router(layout)
    layout.edges = {flow.id: router.route(flow) for flow in model.flows}
    _place_labels(layout)
    _fit_pool(layout)
    return layout


# --- writing the diagram ---------------------------------------------------------------------


ATTRIBUTE_ESCAPES = (
    ("&", "&amp;"),
    ("<", "&lt;"),
    (">", "&gt;"),
    ('"', "&quot;"),
    ("\n", "&#10;"),
    ("\r", "&#13;"),
    ("\t", "&#9;"),
)


def _escape(value: str) -> str:
    for char, entity in ATTRIBUTE_ESCAPES:
        value = value.replace(char, entity)
    return value


@dataclass
class XmlElement:
    """Just enough of an element to write the diagram the way Camunda Modeler does."""

    name: str
    attributes: list[tuple[str, str]]
    children: list[XmlElement] = field(default_factory=list)

    def lines(self, depth: int) -> Iterator[str]:
        pad = "  " * depth
        attributes = "".join(f' {key}="{_escape(value)}"' for key, value in self.attributes)
        if not self.children:
            yield f"{pad}<{self.name}{attributes} />"
            return
        yield f"{pad}<{self.name}{attributes}>"
        for child in self.children:
            yield from child.lines(depth + 1)
        yield f"{pad}</{self.name}>"


class Names:
    """Qualified names with the file's own prefixes."""

    def __init__(self, root: etree._Element) -> None:
        declared: dict[str, str | None] = {}
        for prefix, uri in root.nsmap.items():
            declared.setdefault(uri, prefix)
        if BPMN not in declared:
            raise LayoutError(f"the root element does not declare {BPMN}")
        self.declarations: list[tuple[str, str]] = []  # for namespaces the root lacks
        for uri, usual in USUAL_PREFIXES.items():
            if uri not in declared:
                prefix, n = usual, 1
                while prefix in root.nsmap:
                    prefix, n = f"{usual}{n}", n + 1
                declared[uri] = prefix
                self.declarations.append((f"xmlns:{prefix}", uri))
        self.prefixes = declared

    def __call__(self, uri: str, local: str) -> str:
        prefix = self.prefixes[uri]
        return f"{prefix}:{local}" if prefix else local


def _bounds(names: Names, box: Box) -> XmlElement:
    return XmlElement(
        names(DC, "Bounds"),
        [
            ("x", str(box.x)),
            ("y", str(box.y)),
            ("width", str(box.width)),
            ("height", str(box.height)),
        ],
    )


def _label(names: Names, box: Box | None) -> list[XmlElement]:
    if box is None:
        return []
    return [XmlElement(names(BPMNDI, "BPMNLabel"), [], [_bounds(names, box)])]


def _shape(
    names: Names, element_id: str, box: Box, extra: list[tuple[str, str]], label: Box | None = None
) -> XmlElement:
    attributes = [("id", f"{element_id}_di"), ("bpmnElement", element_id), *extra]
    return XmlElement(
        names(BPMNDI, "BPMNShape"), attributes, [_bounds(names, box), *_label(names, label)]
    )


def _edge(names: Names, flow_id: str, points: list[Point], label: Box | None) -> XmlElement:
    waypoints = [
        XmlElement(names(DI, "waypoint"), [("x", str(x)), ("y", str(y))]) for x, y in points
    ]
    return XmlElement(
        names(BPMNDI, "BPMNEdge"),
        [("id", f"{flow_id}_di"), ("bpmnElement", flow_id)],
        [*waypoints, *_label(names, label)],
    )


def diagram_element(layout: Layout, names: Names) -> XmlElement:
    model = layout.model
    horizontal = [("isHorizontal", "true")]
    plane: list[XmlElement] = [_shape(names, model.participant_id, layout.pool, horizontal)]
    plane += [
        _shape(names, lane.id, box, horizontal)
        for lane, box in zip(model.lanes, layout.lanes, strict=True)
        if lane.id is not None
    ]
    for node in model.nodes.values():
        # Without the marker flag bpmn-js draws an exclusive gateway as an empty diamond.
        extra = [("isMarkerVisible", "true")] if node.tag == "exclusiveGateway" else []
        plane.append(
            _shape(names, node.id, layout.nodes[node.id], extra, layout.labels.get(node.id))
        )
    plane += [
        _edge(names, flow.id, layout.edges[flow.id], layout.labels.get(flow.id))
        for flow in model.flows
    ]
    return XmlElement(
        names(BPMNDI, "BPMNDiagram"),
        [("id", f"{model.process_id}_diagram"), *names.declarations],
        [
            XmlElement(
                names(BPMNDI, "BPMNPlane"),
                [("id", f"{model.process_id}_plane"), ("bpmnElement", model.collaboration_id)],
                plane,
            )
        ],
    )


def collaboration_element(model: Model, names: Names) -> XmlElement:
    participant = [("id", model.participant_id)]
    if model.process_name:
        participant.append(("name", model.process_name))
    participant.append(("processRef", model.process_id))
    return XmlElement(
        names(BPMN, "collaboration"),
        [("id", model.collaboration_id)],
        [XmlElement(names(BPMN, "participant"), participant)],
    )


# --- the file ---------------------------------------------------------------------------------

# A start tag's attributes; values may hold ">" so they are matched whole.
_ATTRIBUTES = r"""(?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*\s*"""
_DECLARATION = re.compile(r"<\?xml[^>]*\?>")


def _qname(element: etree._Element) -> str:
    local = etree.QName(element).localname
    return f"{element.prefix}:{local}" if element.prefix else local


def _diagrams(root: etree._Element) -> list[etree._Element]:
    return root.findall(f"{{{BPMNDI}}}BPMNDiagram")


def semantic_form(root: etree._Element) -> bytes:
    """Canonical XML of everything but the diagrams, ignoring whitespace-only text."""
    tree = copy.deepcopy(root)
    for diagram in _diagrams(tree):
        tree.remove(diagram)
    for node in tree.iter():
        if isinstance(node.tag, str) and node.text is not None and not node.text.strip():
            node.text = None
        if node.tail is not None and not node.tail.strip():
            node.tail = None
    return etree.tostring(tree, method="c14n")


def _cut_diagrams(text: str, root: etree._Element) -> tuple[str, int | None]:
    """The text without its diagrams (and the whitespace before them), and where the first was."""
    spans = []
    for name in sorted({_qname(d) for d in _diagrams(root)}):
        end = re.compile(rf"</{re.escape(name)}\s*>")
        for found in re.finditer(rf"\s*<{re.escape(name)}{_ATTRIBUTES}(/?)>", text):
            closing = None if found.group(1) else end.search(text, found.end())
            spans.append((found.start(), closing.end() if closing else found.end()))
    for start, stop in sorted(spans, reverse=True):
        text = text[:start] + text[stop:]
    return text, min(spans)[0] if spans else None


def _splice(text: str, root: etree._Element, diagram: str, collaboration: str | None) -> str:
    newline = "\r\n" if "\r\n" in text else "\n"
    text, at = _cut_diagrams(text, root)
    if at is None:
        at = text.rfind(f"</{_qname(root)}")
        while at > 0 and text[at - 1].isspace():
            at -= 1
    text = text[:at] + newline + diagram.replace("\n", newline) + text[at:]
    if collaboration is not None:
        opening = re.search(rf"<{re.escape(_qname(root))}{_ATTRIBUTES}>", text)
        if opening is None:
            raise LayoutError("cannot find the start of the definitions element")
        at = opening.end()
        text = text[:at] + newline + collaboration.replace("\n", newline) + text[at:]
    return text


def _expected_root(root: etree._Element, model: Model) -> etree._Element:
    expected = copy.deepcopy(root)
    for old in _diagrams(expected):
        expected.remove(old)
    if not model.has_collaboration:
        collaboration = etree.Element(_q("collaboration"), id=model.collaboration_id)
        participant = etree.SubElement(collaboration, _q("participant"), id=model.participant_id)
        if model.process_name:
            participant.set("name", model.process_name)
        participant.set("processRef", model.process_id)
        expected.insert(0, collaboration)
    return expected


def _reserialised(text: str, expected: etree._Element) -> str:
    """The whole document as lxml writes it: the fallback when splicing the text went wrong."""
    tree = copy.deepcopy(expected).getroottree()
    etree.indent(tree, space="  ")
    declaration = _DECLARATION.match(text.lstrip("\ufeff"))
    body = etree.tostring(tree, encoding="unicode")
    return (declaration.group(0) + "\n" if declaration else "") + body + "\n"


def _parse(data: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, strip_cdata=False)
    return etree.fromstring(data, parser)


def _check_ids(root: etree._Element, diagram: XmlElement) -> None:
    taken = {value for value in root.xpath("//@id") if isinstance(value, str)}

    def ids(element: XmlElement) -> Iterator[str]:
        yield from (value for key, value in element.attributes if key == "id")
        for child in element.children:
            yield from ids(child)

    clashes = sorted(set(ids(diagram)) & taken)
    if clashes:
        raise LayoutError(f"diagram ids already used by the model: {', '.join(clashes)}")


def _faithful(result: str, encoding: str, semantics: bytes) -> bool:
    written = _parse(result.encode(encoding))
    return semantic_form(written) == semantics and len(_diagrams(written)) == 1


def relayout(data: bytes) -> bytes:
    """The file's bytes with a freshly laid out diagram."""
    root = _parse(data)
    encoding = root.getroottree().docinfo.encoding or "UTF-8"
    text = data.decode(encoding)
    model = read_model(root)
    names = Names(root)
    diagram = diagram_element(compute_layout(model), names)
    expected = _expected_root(root, model)
    _check_ids(expected, diagram)
    diagram_text = "\n".join(diagram.lines(1))
    collaboration = None
    if not model.has_collaboration:
        collaboration = "\n".join(collaboration_element(model, names).lines(1))
    semantics = semantic_form(expected)
    result = _splice(text, root, diagram_text, collaboration)
    if not _faithful(result, encoding, semantics):
        # The text held markup the splice misread (a diagram in a comment, say).
        result = _splice(_reserialised(text, expected), expected, diagram_text, None)
        if not _faithful(result, encoding, semantics):
            raise LayoutError("could not write the diagram without changing the model")
    return result.encode(encoding)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("files", nargs="+", type=Path, help="BPMN files, rewritten in place")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file's diagram is stale"
    )
    args = parser.parse_args(argv)
    status = 0
    for path in args.files:
        try:
            old = path.read_bytes()
            new = relayout(old)
        except (OSError, etree.XMLSyntaxError, LayoutError) as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            status = 1
            continue
        if new == old:
            continue
        if args.check:
            print(f"{path}: diagram out of date", file=sys.stderr)
            status = 1
        else:
            path.write_bytes(new)
    return status


if __name__ == "__main__":
    sys.exit(main())

"""tools/bpmn_layout.py: the diagram it writes is whole, tidy and stable, and the model keeps
its bytes. The shipped diagrams (bpmn/*.bpmn, whatever they hold today) are laid out as copies.
"""

from __future__ import annotations

import itertools
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from lxml import etree

from tests.conftest import ROOT
from tools.bpmn_layout import main

NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "dc": "http://www.omg.org/spec/DD/20100524/DC",
    "di": "http://www.omg.org/spec/DD/20100524/DI",
}
FLOW_NODES = {
    "startEvent",
    "endEvent",
    "intermediateCatchEvent",
    "intermediateThrowEvent",
    "boundaryEvent",
    "task",
    "userTask",
    "manualTask",
    "scriptTask",
    "businessRuleTask",
    "serviceTask",
    "sendTask",
    "receiveTask",
    "callActivity",
    "exclusiveGateway",
    "parallelGateway",
    "eventBasedGateway",
    "inclusiveGateway",
    "complexGateway",
}
DIAGRAM = re.compile(r"\s*<bpmndi:BPMNDiagram\b.*?</bpmndi:BPMNDiagram>", re.DOTALL)

Box = tuple[float, float, float, float]  # x, y, width, height

# Two lanes; a parallel split and join (one branch in the second lane); a rework loop; a
# non-interrupting and an interrupting timer on one task; one end event in no lane.
PROCESS = """\
  <bpmn:process id="claims" name="Claims" isExecutable="true">
    <bpmn:laneSet id="claims_lanes">
      <bpmn:lane id="clerk" name="Clerk">
        <bpmn:flowNodeRef>received</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>split</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>prepare</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>join</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>check</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>ok_gateway</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>done</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>remind</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>reminded</bpmn:flowNodeRef>
      </bpmn:lane>
      <bpmn:lane id="manager" name="Manager">
        <bpmn:flowNodeRef>approve</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="received" name="Claim received" />
    <bpmn:parallelGateway id="split" />
    <bpmn:userTask id="prepare" name="Prepare claim" camunda:candidateGroups="clerk" />
    <bpmn:userTask id="approve" name="Approve claim" />
    <bpmn:parallelGateway id="join" />
    <bpmn:userTask id="check" name="Check claim" />
    <bpmn:boundaryEvent id="reminder" name="1 day" attachedToRef="check" cancelActivity="false">
      <bpmn:timerEventDefinition id="reminder_timer">
        <bpmn:timeDuration xsi:type="bpmn:tFormalExpression">P1D</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:boundaryEvent id="timeout" name="5 days" attachedToRef="check">
      <bpmn:timerEventDefinition id="timeout_timer">
        <bpmn:timeDuration xsi:type="bpmn:tFormalExpression">P5D</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:exclusiveGateway id="ok_gateway" name="Claim in order?" />
    <bpmn:endEvent id="done" name="Claim settled" />
    <bpmn:manualTask id="remind" name="Remind checker" />
    <bpmn:endEvent id="reminded" />
    <bpmn:endEvent id="timed_out" name="Claim timed out" />
    <bpmn:sequenceFlow id="f_split" sourceRef="received" targetRef="split" />
    <bpmn:sequenceFlow id="f_prepare" sourceRef="split" targetRef="prepare" />
    <bpmn:sequenceFlow id="f_approve" sourceRef="split" targetRef="approve" />
    <bpmn:sequenceFlow id="f_prepared" sourceRef="prepare" targetRef="join" />
    <bpmn:sequenceFlow id="f_approved" sourceRef="approve" targetRef="join" />
    <bpmn:sequenceFlow id="f_check" sourceRef="join" targetRef="check" />
    <bpmn:sequenceFlow id="f_checked" sourceRef="check" targetRef="ok_gateway" />
    <bpmn:sequenceFlow id="f_ok" name="Yes" sourceRef="ok_gateway" targetRef="done">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">n&gt;0</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_rework" name="No: rework" sourceRef="ok_gateway" targetRef="check" />
    <bpmn:sequenceFlow id="f_remind" sourceRef="reminder" targetRef="remind" />
    <bpmn:sequenceFlow id="f_reminded" sourceRef="remind" targetRef="reminded" />
    <bpmn:sequenceFlow id="f_timeout" sourceRef="timeout" targetRef="timed_out" />
  </bpmn:process>
"""
HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="{bpmn}" xmlns:bpmndi="{bpmndi}" xmlns:dc="{dc}" xmlns:di="{di}"'
    ' xmlns:camunda="http://camunda.org/schema/1.0/bpmn"'
    ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="claims_definitions"'
    ' targetNamespace="http://bpmn.io/schema/bpmn">\n'
).format(**NS)
COLLABORATION = """\
  <bpmn:collaboration id="claims_collaboration">
    <bpmn:participant id="claims_participant" name="Claims" processRef="claims" />
  </bpmn:collaboration>
"""
CLAIMS = HEAD + COLLABORATION + PROCESS + "</bpmn:definitions>\n"


def lay_out(path: Path) -> bytes:
    assert main([str(path)]) == 0
    return path.read_bytes()


def local(element: etree._Element) -> str:
    return etree.QName(element).localname


def bounds(shape: etree._Element) -> Box:
    found = shape.find("dc:Bounds", NS)
    assert found is not None
    x, y, width, height = (float(found.get(key, "")) for key in ("x", "y", "width", "height"))
    return x, y, width, height


def inside(inner: Box, outer: Box) -> bool:
    return (
        outer[0] <= inner[0]
        and inner[0] + inner[2] <= outer[0] + outer[2]
        and outer[1] <= inner[1]
        and inner[1] + inner[3] <= outer[1] + outer[3]
    )


def overlap(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def on_border(point: tuple[float, float], box: Box) -> bool:
    x, y = point
    left, top, right, bottom = box[0], box[1], box[0] + box[2], box[1] + box[3]
    within = left <= x <= right and top <= y <= bottom
    return within and (x in (left, right) or y in (top, bottom))


def semantics(data: bytes) -> dict[str, bytes]:
    """Canonical XML of the collaboration (when there is one) and of the process."""
    root = etree.fromstring(data)
    return {
        local(element): etree.tostring(element, method="c14n")
        for element in root
        if isinstance(element.tag, str) and local(element) in ("collaboration", "process")
    }


def check_structure(data: bytes) -> None:
    """Every element drawn once, shapes in their lanes without overlaps, orthogonal edges."""
    root = etree.fromstring(data)
    process = root.find("bpmn:process", NS)
    assert process is not None
    nodes = {
        e.get("id", ""): e for e in process if isinstance(e.tag, str) and local(e) in FLOW_NODES
    }
    flows = {e.get("id", ""): e for e in process.findall("bpmn:sequenceFlow", NS)}
    lanes = process.findall("bpmn:laneSet/bpmn:lane", NS)
    participant = root.find("bpmn:collaboration/bpmn:participant", NS)
    assert participant is not None
    diagrams = root.findall("bpmndi:BPMNDiagram", NS)
    assert len(diagrams) == 1
    drawn = Counter(e.get("bpmnElement") for e in diagrams[0].iter() if e.get("bpmnElement"))
    wanted = [*nodes, *flows, *(lane.get("id") for lane in lanes), participant.get("id")]
    assert {key: drawn[key] for key in wanted} == dict.fromkeys(wanted, 1)
    assert drawn.total() == len(wanted) + 1  # and the plane, for the collaboration

    shapes = {
        shape.get("bpmnElement", ""): bounds(shape)
        for shape in diagrams[0].iterfind(".//bpmndi:BPMNShape", NS)
    }
    pool = shapes[participant.get("id", "")]
    lane_boxes = [shapes[lane.get("id", "")] for lane in lanes] or [pool]
    lane_of: dict[str, Box] = {}
    for lane in lanes:
        for ref in lane.findall("bpmn:flowNodeRef", NS):
            lane_of.setdefault((ref.text or "").strip(), shapes[lane.get("id", "")])
    assert all(inside(box, pool) for box in lane_boxes)
    hosts = {node_id: e.get("attachedToRef") for node_id, e in nodes.items()}
    for node_id, box in ((n, shapes[n]) for n in nodes):
        host = hosts[node_id]
        assert inside(box, pool), node_id
        if host is not None:
            in_lane = inside(box, lane_of.get(host, pool))
            assert in_lane or overlap(box, shapes[host]), node_id
        elif node_id in lane_of:
            assert inside(box, lane_of[node_id]), node_id
        else:
            assert any(inside(box, lane) for lane in lane_boxes), node_id
    for a, b in itertools.combinations(sorted(nodes), 2):
        if hosts[a] != b and hosts[b] != a:
            assert not overlap(shapes[a], shapes[b]), (a, b)

    for edge in diagrams[0].iterfind(".//bpmndi:BPMNEdge", NS):
        flow = flows[edge.get("bpmnElement", "")]
        points = [
            (float(p.get("x", "")), float(p.get("y", ""))) for p in edge.iterfind("di:waypoint", NS)
        ]
        assert len(points) >= 2, flow.get("id")
        for (x1, y1), (x2, y2) in itertools.pairwise(points):
            assert (x1 == x2) != (y1 == y2), (flow.get("id"), points)
        assert on_border(points[0], shapes[flow.get("sourceRef", "")]), flow.get("id")
        assert on_border(points[-1], shapes[flow.get("targetRef", "")]), flow.get("id")


def test_a_small_process_is_laid_out_in_full_and_its_model_kept(tmp_path: Path) -> None:
    path = tmp_path / "claims.bpmn"
    path.write_text(CLAIMS)

    first = lay_out(path)

    check_structure(first)
    assert semantics(first) == semantics(CLAIMS.encode())
    assert DIAGRAM.sub("", first.decode()) == CLAIMS  # the model keeps its very bytes
    assert lay_out(path) == first


def test_the_layout_follows_the_flow(tmp_path: Path) -> None:
    path = tmp_path / "claims.bpmn"
    path.write_text(CLAIMS)
    root = etree.fromstring(lay_out(path))
    shapes = {s.get("bpmnElement"): bounds(s) for s in root.iterfind(".//bpmndi:BPMNShape", NS)}
    x = {key: box[0] + box[2] / 2 for key, box in shapes.items()}
    y = {key: box[1] + box[3] / 2 for key, box in shapes.items()}

    assert x["received"] < x["split"] < x["prepare"] == x["approve"] < x["join"] < x["check"]
    assert shapes["manager"][1] < y["approve"] < shapes["manager"][1] + shapes["manager"][3]
    assert y["reminder"] == y["timeout"] == shapes["check"][1] + shapes["check"][3]
    assert y["remind"] > y["check"] and x["remind"] > x["check"]  # a row below, a column on
    rework = root.find(".//bpmndi:BPMNEdge[@bpmnElement='f_rework']", NS)
    assert rework is not None
    ys = [float(p.get("y", "")) for p in rework.iterfind("di:waypoint", NS)]
    assert min(ys) < shapes["check"][1]  # the loop runs above the row
    labels = root.findall(".//bpmndi:BPMNEdge/bpmndi:BPMNLabel/dc:Bounds", NS)
    assert len(labels) == 2  # the two named flows


def test_a_collaboration_is_added_when_missing(tmp_path: Path) -> None:
    path = tmp_path / "claims.bpmn"
    path.write_text(HEAD + PROCESS + "</bpmn:definitions>\n")

    data = lay_out(path)

    check_structure(data)
    first = etree.fromstring(data)[0]
    assert local(first) == "collaboration" and first.get("id") == "claims_collaboration"
    assert [(p.get("id"), p.get("name"), p.get("processRef")) for p in first] == [
        ("claims_participant", "Claims", "claims")
    ]
    assert lay_out(path) == data


def test_old_diagrams_are_replaced_and_commented_markup_survives(tmp_path: Path) -> None:
    path = tmp_path / "claims.bpmn"
    old = '  <bpmndi:BPMNDiagram id="old"><bpmndi:BPMNPlane id="p" /></bpmndi:BPMNDiagram>\n'
    comment = '  <!-- <bpmndi:BPMNDiagram id="draft" /> -->\n'
    path.write_text(HEAD + COLLABORATION + PROCESS + comment + old + old + "</bpmn:definitions>\n")

    data = lay_out(path)

    check_structure(data)
    assert comment.strip().encode() in data
    assert semantics(data) == semantics(CLAIMS.encode())


def test_check_reports_a_stale_diagram_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "claims.bpmn"
    path.write_text(CLAIMS)
    assert main(["--check", str(path)]) == 1
    assert path.read_text() == CLAIMS
    lay_out(path)
    assert main(["--check", str(path)]) == 0


def test_a_file_it_cannot_lay_out_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.bpmn"
    broken = CLAIMS.replace('targetRef="done"', 'targetRef="nowhere"')
    path.write_text(broken)
    assert main([str(path)]) == 1
    assert "sequence flow f_ok joins an unknown flow node" in capsys.readouterr().err
    assert path.read_text() == broken


@pytest.mark.parametrize(
    "shipped", sorted((ROOT / "bpmn").glob("*.bpmn")), ids=lambda path: path.name
)
def test_the_shipped_diagrams_lay_out_cleanly(shipped: Path, tmp_path: Path) -> None:
    path = tmp_path / shipped.name
    shutil.copyfile(shipped, path)
    original = path.read_bytes()

    data = lay_out(path)

    check_structure(data)
    before, after = semantics(original), semantics(data)
    assert after["process"] == before["process"]
    if "collaboration" in before:  # else the tool adds one, and only that
        assert after == before
        assert DIAGRAM.sub("", data.decode()) == DIAGRAM.sub("", original.decode())
    assert lay_out(path) == data


@pytest.mark.parametrize(
    "shipped", sorted((ROOT / "bpmn").glob("*.bpmn")), ids=lambda path: path.name
)
def test_the_shipped_diagrams_carry_a_complete_diagram(shipped: Path) -> None:
    """As committed (laid out by the tool or by hand in the Modeler): every element drawn,
    inside its lane, nothing overlapping, so they open cleanly in bpmn-js."""
    check_structure(shipped.read_bytes())

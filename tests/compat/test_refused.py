"""Every construct deploy refuses (engine/modeling/constructs.py), deployed through the
HTTP API in a diagram of its own: 422 `diagram-invalid`, naming the file, the element and
what to use instead, and nothing stored. One case per refused row; a row without a case
fails ``test_every_refused_row_has_its_case``."""

from __future__ import annotations

import pytest

from engine.modeling import constructs
from engine.modeling.constructs import CONSTRUCTS, Status
from tests.api.conftest import V1, ApiClient, multipart, problem
from tests.diagrams import diagram, seq, user

CAMUNDA_EXTENSION = "<bpmn:extensionElements>{}</bpmn:extensionElements>"


def around(element: str, element_id: str = "x") -> str:
    """A start, the element, an end, in one line."""
    return (
        '<bpmn:startEvent id="s"/>' + element + '<bpmn:endEvent id="e"/>'
        + seq("s", element_id) + seq(element_id, "e")
    )  # fmt: skip


def user_with(attributes: str = "", inside: str = "") -> str:
    return (
        f'<bpmn:userTask id="x" camunda:candidateGroups="finance" {attributes}>{inside}'
        "</bpmn:userTask>"
    )


def event(kind: str, definition: str, element_id: str = "x") -> str:
    return f'<bpmn:{kind} id="{element_id}"><bpmn:{definition} /></bpmn:{kind}>'


DMN_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?><definitions '
    'xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" '
    'xmlns:camunda="http://camunda.org/schema/1.0/dmn" id="d" name="d" namespace="n">'
)


def table(policy: str = "FIRST", decision: str = "grade", extra: str = "") -> str:
    return (
        f'<decision id="{decision}" name="{decision}" {extra}>'
        f'<decisionTable id="{decision}_table" hitPolicy="{policy}">'
        '<input id="i"><inputExpression id="ie" typeRef="number"><text>score</text>'
        '</inputExpression></input><output id="o" name="grade" typeRef="string"/>'
        '<rule id="r1"><inputEntry id="r1i"><text>&gt;= 700</text></inputEntry>'
        '<outputEntry id="r1o"><text>"A"</text></outputEntry></rule>'
        "</decisionTable></decision>"
    )


def dmn(body: str) -> tuple[str, bytes]:
    return "grade.dmn", (DMN_HEAD + body + "</definitions>").encode()


def bpmn(body: str, outside: str = "") -> tuple[str, bytes]:
    return diagram("compat", body, outside)


CASES: dict[str, tuple[tuple[str, bytes], str]] = {
    # key: (the file, the element the refusal names)
    "event-subprocess": (bpmn(
        around(user_with()) + '<bpmn:subProcess id="on_error" triggeredByEvent="true">'
        '<bpmn:startEvent id="es"><bpmn:errorEventDefinition /></bpmn:startEvent>'
        '<bpmn:endEvent id="ee"/>' + seq("es", "ee") + "</bpmn:subProcess>"), "on_error"),
    "script-format": (bpmn(around(
        '<bpmn:scriptTask id="x" scriptFormat="groovy"><bpmn:script>a = 1</bpmn:script>'
        "</bpmn:scriptTask>")), "x"),
    "script-resource": (bpmn(around(
        '<bpmn:scriptTask id="x" scriptFormat="python" camunda:resource="deployment://a.py"/>'
    )), "x"),
    "error-variables": (bpmn(
        around(user_with()) + '<bpmn:boundaryEvent id="failed" attachedToRef="x">'
        '<bpmn:errorEventDefinition camunda:errorCodeVariable="code"/></bpmn:boundaryEvent>'
        '<bpmn:endEvent id="fe"/>' + seq("failed", "fe")), "failed"),
    "bindings": (bpmn(around(
        '<bpmn:businessRuleTask id="x" camunda:decisionRef="grade" '
        'camunda:decisionRefBinding="version" camunda:decisionRefVersion="2"/>')), "x"),
    "dmn-no-decision": (dmn(""), "d"),
    "dmn-no-table": (dmn('<decision id="ctx" name="ctx"><context id="c"/></decision>'), "ctx"),
    "message-throw": (bpmn(around(
        '<bpmn:intermediateThrowEvent id="x"><bpmn:messageEventDefinition messageRef="m"/>'
        "</bpmn:intermediateThrowEvent>"), '<bpmn:message id="m" name="m"/>'), "x"),
    "message-start": (bpmn(
        '<bpmn:startEvent id="x"><bpmn:messageEventDefinition messageRef="m"/></bpmn:startEvent>'
        '<bpmn:endEvent id="e"/>' + seq("x", "e"), '<bpmn:message id="m" name="m"/>'), "x"),
    "receive-task": (bpmn(around('<bpmn:receiveTask id="x" messageRef="m"/>'),
                          '<bpmn:message id="m" name="m"/>'), "x"),
    "signal-events": (bpmn(around(event("intermediateCatchEvent", "signalEventDefinition"))),
                      "x"),
    "escalation-events": (bpmn(around(
        event("intermediateThrowEvent", "escalationEventDefinition"))), "x"),
    "compensation": (bpmn(around(
        event("intermediateThrowEvent", "compensateEventDefinition"))), "x"),
    "conditional-boundary-start": (bpmn(
        around(user_with()) + '<bpmn:boundaryEvent id="when" attachedToRef="x">'
        '<bpmn:conditionalEventDefinition><bpmn:condition xsi:type="bpmn:tFormalExpression">'
        "done</bpmn:condition></bpmn:conditionalEventDefinition></bpmn:boundaryEvent>"
        '<bpmn:endEvent id="we"/>' + seq("when", "we")), "when"),
    "data-associations": (bpmn(around(user_with(inside=(
        '<bpmn:dataOutputAssociation id="out"><bpmn:targetRef>doc_ref</bpmn:targetRef>'
        "</bpmn:dataOutputAssociation>")))
        + '<bpmn:dataObjectReference id="doc_ref" dataObjectRef="doc"/>'
        '<bpmn:dataObject id="doc"/>'), "x"),
    "mi-collection": (bpmn(around(user_with(inside=(
        '<bpmn:multiInstanceLoopCharacteristics camunda:collection="items" '
        'camunda:elementVariable="item"/>')))), "x"),
    "mi-counters": (bpmn(around(user_with(inside=(
        "<bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>3</bpmn:loopCardinality>"
        "<bpmn:completionCondition>nrOfCompletedInstances &gt;= 2</bpmn:completionCondition>"
        "</bpmn:multiInstanceLoopCharacteristics>")))), "x"),
    "input-output": (bpmn(around(user_with(inside=CAMUNDA_EXTENSION.format(
        '<camunda:inputOutput><camunda:inputParameter name="a">1</camunda:inputParameter>'
        "</camunda:inputOutput>")))), "x"),
    "listeners": (bpmn(around(user_with(inside=CAMUNDA_EXTENSION.format(
        '<camunda:taskListener event="create" class="com.example.Hook"/>')))), "x"),
    "call-mappings": (bpmn(around(
        '<bpmn:callActivity id="x" calledElement="compat">'
        + CAMUNDA_EXTENSION.format('<camunda:in source="a" target="b"/>')
        + "</bpmn:callActivity>")), "x"),

    "java": (bpmn(around('<bpmn:businessRuleTask id="x" camunda:class="com.example.Rule"/>')),
             "x"),
    "follow-up-date": (bpmn(around(user_with('camunda:followUpDate="${due}"'))), "x"),
    "form-data": (bpmn(around(user_with(inside=CAMUNDA_EXTENSION.format(
        '<camunda:formData><camunda:formField id="f" type="string"/></camunda:formData>')))),
        "x"),
    "service-send": (bpmn(around('<bpmn:serviceTask id="x" camunda:type="external" '
                                 'camunda:topic="t"/>')), "x"),
    "transaction": (bpmn(around('<bpmn:transaction id="x"><bpmn:startEvent id="ts"/>'
                                '<bpmn:endEvent id="te"/>' + seq("ts", "te")
                                + "</bpmn:transaction>")), "x"),
    "ad-hoc": (bpmn(around('<bpmn:adHocSubProcess id="x">' + user("inner")
                           + "</bpmn:adHocSubProcess>")), "x"),
    "complex-gateway": (bpmn(around('<bpmn:complexGateway id="x"/>')), "x"),
}  # fmt: skip

REFUSED = [c for c in CONSTRUCTS if c.status == Status.REFUSED]


def test_every_refused_row_has_its_case() -> None:
    assert sorted(CASES) == sorted(c.key for c in REFUSED)


@pytest.mark.parametrize("construct", REFUSED, ids=[c.key for c in REFUSED])
def test_a_refused_construct_is_refused_by_name(client: ApiClient, construct: object) -> None:
    from engine.modeling.constructs import Construct

    assert isinstance(construct, Construct)
    (name, content), element = CASES[construct.key]
    with client.unchanged():
        response = client.post(
            f"{V1}/definitions",
            "owner",
            data=multipart([(name, content)]),
            content_type="multipart/form-data",
        )
        errors = problem(response, 422, "diagram-invalid")["errors"]
    sentence = constructs.refusal(construct)
    mine = [e for e in errors if e["message"] == sentence]
    assert mine, errors
    assert {(e["file"], e["element"]) for e in mine} == {(name, element)}
    assert "`" not in sentence and construct.note.replace("`", "") in sentence


DIFFERS = [c for c in CONSTRUCTS if c.status == Status.DIFFERS]


def test_a_call_that_says_it_passes_every_variable_deploys_without_a_warning(
    client: ApiClient,
) -> None:
    says = CAMUNDA_EXTENSION.format('<camunda:in variables="all"/><camunda:out variables="all"/>')
    call = f'<bpmn:callActivity id="x" calledElement="callee">{says}</bpmn:callActivity>'
    body = client.deploy([bpmn(around(call)), diagram("callee", around(user_with()))])
    assert body["warnings"] == []


def test_a_variable_named_like_a_counter_is_the_users_own(client: ApiClient) -> None:
    loop = (
        "<bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>3</bpmn:loopCardinality>"
        "<bpmn:completionCondition>nrOfApprovals &gt;= 2</bpmn:completionCondition>"
        "</bpmn:multiInstanceLoopCharacteristics>"
    )
    client.deploy([bpmn(around(user_with(inside=loop)))])


DIFFERS_CASES: dict[str, list[tuple[str, bytes]]] = {
    "call-activity": [
        bpmn(around('<bpmn:callActivity id="x" calledElement="callee"/>')),
        diagram("callee", around(user_with())),
    ],
}


@pytest.mark.parametrize("construct", DIFFERS, ids=[c.key for c in DIFFERS])
def test_what_runs_otherwise_than_camunda_is_said_at_deploy(
    client: ApiClient, construct: object
) -> None:
    """Deployed, with a warning naming the element and the difference: never silent."""
    from engine.modeling.constructs import Construct

    assert isinstance(construct, Construct)
    assert sorted(DIFFERS_CASES) == sorted(c.key for c in DIFFERS)
    body = client.deploy(DIFFERS_CASES[construct.key])
    assert [w for w in body["warnings"] if construct.note.replace("`", "") in w] != []

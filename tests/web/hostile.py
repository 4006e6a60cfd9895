"""Hostile content for the browser's XSS tests (tests/web/test_xss.py): a diagram, a form
and a decision table whose every free text is a payload, and the orders an employee starts
with payloads in their data. Each payload names where it was planted, so a script that
runs says which sink let it through."""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from sqlalchemy import select, update

from cli.demo import DOER, SAMPLES
from engine.errors import FormInvalid
from engine.storage import DefinitionTask, HumanTaskRole, TaskState
from engine.tradeflow import Tradeflow
from tools.bpmn_layout import relayout


def payload(where: str) -> str:
    """Breaks out of a script, an element and an attribute; runs ``window.__xss = where``."""
    return (
        f"</script><script>window.__xss='{where}'</script>"
        f"<img src=x onerror=\"window.__xss='{where}'\">"
        f"\"'><svg onload=\"window.__xss='{where}'\">"
    )


def slashless(where: str) -> str:
    """A payload for names that become a path segment (a form's key, a file's name)."""
    return f"\"'><img src=x onerror=\"window.__xss='{where}'\"><svg onload=window.__xss='{where}'>"


FORM_KEY = slashless("form-key")
PICTURE = (  # one grey pixel
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVQI12N4DwAB"
    "AQEAWzKqGgAAAABJRU5ErkJggg=="
)
DMN_FILE = slashless("dmn-file") + ".dmn"
ROLE = slashless("role")  # a second queue of the manager's task: nobody holds it
# deploy refuses a candidate group that is no role id; a queue so named is what a
# deployment made before that rule left: the task's row is given it after deploy
ROLE_PLACEHOLDER = "xss_queue"
# the server's refusal quotes the pattern back (the test lets the browser skip its own
# check of it, as a client that checks less would)
PATTERN = r"^ok$|" + payload("server-error")
PASSES_THE_BROWSER = "okZ"
# the pre-approval attack of issue 14: a variable the manager's approval form starts from
# that completes the manager's task as the manager
APPROVE = (
    "</script><script>window.__xss='task-data';"
    "fetch('/api/v1/tasks/'+document.getElementById('form').dataset.task+'/complete',"
    "{method:'POST',credentials:'same-origin',headers:{'Content-Type':'application/json',"
    "'X-CSRFToken':document.querySelector('meta[name=csrf-token]').content},"
    "body:JSON.stringify({data:{customer_name:'approved by the script'}})})</script>"
    "<img src=x onerror=\"window.__xss='task-data-img'\">"
)

BPMN_NS = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
    'xmlns:html="http://www.w3.org/1999/xhtml"'
)


def _a(where: str) -> str:
    return quoteattr(payload(where))


def diagram() -> bytes:
    """Process ``xss_probe``: the employee's task, then the manager's, every name hostile,
    CDATA in a documentation and an XHTML script among the extension elements."""
    semantic = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {BPMN_NS} id="xss_probe_definitions" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="xss_probe" name={_a("process-name")} isExecutable="true">
    <bpmn:documentation><![CDATA[{payload("cdata-process")}]]></bpmn:documentation>
    <bpmn:laneSet id="xss_lanes">
      <bpmn:lane id="lane_sales" name={_a("lane-name")}>
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>enter</bpmn:flowNodeRef>
      </bpmn:lane>
      <bpmn:lane id="lane_manager" name={_a("lane-name-2")}>
        <bpmn:flowNodeRef>review</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>decided</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>done</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>again</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start" name={_a("start-name")}>
      <bpmn:outgoing>to_enter</bpmn:outgoing>
    </bpmn:startEvent>
    <bpmn:sequenceFlow id="to_enter" name={_a("flow-name")} sourceRef="start" targetRef="enter" />
    <bpmn:userTask id="enter" name={_a("task-name")} camunda:formRef={quoteattr(FORM_KEY)}
        camunda:candidateGroups="market_development">
      <bpmn:documentation><![CDATA[{payload("cdata")}]]></bpmn:documentation>
      <bpmn:extensionElements>
        <camunda:properties>
          <camunda:property name="sla" value="P1D" />
          <camunda:property name="formInputs" value="customer_name" />
        </camunda:properties>
        <html:script>window.__xss='xhtml-script'</html:script>
        <html:img src="x" onerror="window.__xss='xhtml-img'" />
      </bpmn:extensionElements>
      <bpmn:incoming>to_enter</bpmn:incoming>
      <bpmn:outgoing>to_review</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="to_review" sourceRef="enter" targetRef="review" />
    <bpmn:userTask id="review" name={_a("task-name-2")} camunda:formRef={quoteattr(FORM_KEY)}
        camunda:candidateGroups={quoteattr("manager," + ROLE_PLACEHOLDER)}>
      <bpmn:extensionElements><camunda:properties>
        <camunda:property name="formInputs" value="customer_name" />
      </camunda:properties></bpmn:extensionElements>
      <bpmn:incoming>to_review</bpmn:incoming>
      <bpmn:outgoing>to_decided</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="to_decided" sourceRef="review" targetRef="decided" />
    <bpmn:exclusiveGateway id="decided" name={_a("gateway-name")} default="to_done">
      <bpmn:incoming>to_decided</bpmn:incoming>
      <bpmn:outgoing>to_done</bpmn:outgoing>
      <bpmn:outgoing>to_again</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:sequenceFlow id="to_done" name={_a("flow-name-2")} sourceRef="decided" targetRef="done" />
    <bpmn:sequenceFlow id="to_again" name={_a("flow-name-3")} sourceRef="decided" targetRef="again">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression"
        xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
        >customer_name == "&lt;/script&gt;&lt;script&gt;"</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:endEvent id="done" name={_a("end-name")}>
      <bpmn:incoming>to_done</bpmn:incoming>
    </bpmn:endEvent>
    <bpmn:endEvent id="again" name={_a("end-name-2")}>
      <bpmn:incoming>to_again</bpmn:incoming>
    </bpmn:endEvent>
    <bpmn:textAnnotation id="note">
      <bpmn:text>{escape(payload("annotation"))}</bpmn:text>
    </bpmn:textAnnotation>
    <bpmn:association id="note_link" sourceRef="enter" targetRef="note" />
  </bpmn:process>
</bpmn:definitions>
"""
    return relayout(semantic.encode())


def form() -> bytes:
    """The probe's form: labels, descriptions, options, markdown, HTML and an image."""
    return json.dumps(
        {
            "id": FORM_KEY,
            "type": "default",
            "schemaVersion": 16,
            "components": [
                {
                    "type": "text",
                    "id": "probe_text",
                    "text": f"# {payload('text-title')}\n\n{payload('text-body')}\n\n"
                    "[a link](javascript:window.__xss='markdown-link')\n\n"
                    "Customer: {{customer_name}}",
                },
                {"type": "html", "id": "probe_html", "content": payload("html")},
                {
                    "type": "image",
                    "id": "probe_image",
                    "source": "javascript:window.__xss='image-source'",
                    "alt": "no picture",
                },
                {
                    "type": "image",
                    "id": "probe_picture",
                    "source": PICTURE,
                    "alt": payload("image-alt"),
                },
                {
                    "type": "textfield",
                    "id": "customer_name_field",
                    "key": "customer_name",
                    "label": payload("form-label"),
                    "description": payload("form-description"),
                },
                {
                    "type": "select",
                    "id": "grade_field",
                    "key": "grade",
                    "label": "Grade",
                    "values": [
                        {"label": payload("option-label"), "value": "A"},
                        {"label": "B", "value": "B"},
                    ],
                },
                {
                    "type": "textfield",
                    "id": "reference_field",
                    "key": "reference",
                    "label": "Reference",
                    "validate": {"pattern": PATTERN},
                },
                {"type": "checkbox", "id": "approved_field", "key": "approved", "label": "OK"},
            ],
        }
    ).encode()


def decisions() -> bytes:
    """A decision table: its name, labels, a rule's text and an output value hostile."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="xss_probe_decisions"
  name={_a("dmn-definitions")} namespace="http://camunda.org/schema/1.0/dmn">
  <decision id="xss_probe_decision" name={_a("decision-name")}>
    <description>{escape(payload("decision-description"))}</description>
    <decisionTable id="xss_probe_table" hitPolicy="UNIQUE">
      <input id="grade_input" label={_a("input-label")}>
        <inputExpression id="grade_expression" typeRef="string">
          <text>grade</text>
        </inputExpression>
      </input>
      <output id="verdict_output" label={_a("output-label")} name="verdict" typeRef="string" />
      <rule id="any_grade">
        <description>{escape(payload("rule-description"))}</description>
        <inputEntry id="any_grade_input">
          <text>-</text>
        </inputEntry>
        <outputEntry id="any_grade_output">
          <text>{escape(json.dumps(payload("output-value")))}</text>
        </outputEntry>
      </rule>
    </decisionTable>
  </decision>
</definitions>
""".encode()


def files() -> list[tuple[str, bytes]]:
    return [("xss_probe.bpmn", diagram()), (DMN_FILE, decisions()), ("probe.form", form())]


def plant(flow: Tradeflow) -> dict[str, int]:
    """Deploy the hostile files as the process owner and start the orders as the employee
    would: the ids of what the tests open."""
    flow.deploy(files(), actor="process.owner")
    with flow.db.transaction() as session:  # the queue as a deployment before the rule left it
        for task in session.scalars(select(DefinitionTask)):
            if ROLE_PLACEHOLDER in task.roles:
                task.roles = [ROLE if r == ROLE_PLACEHOLDER else r for r in task.roles]
    probes = [
        flow.start(
            "xss_probe",
            actor="wang.fang",
            business_key=payload("business-key"),
            variables={
                "customer_name": payload("customer"),
                "note": payload("variable"),
                "nested": {"deep": [payload("nested-variable")]},
            },
        )
        for _ in range(2)
    ]
    [enter] = flow.tasks_of(probes[0])
    # the second has gone past the employee to the manager, its data changed on the way
    [entered] = flow.tasks_of(probes[1])
    flow.complete(
        entered.id, actor="wang.fang", data={"customer_name": payload("customer-changed")}
    )
    [review] = [t for t in flow.tasks_of(probes[1]) if t.state == TaskState.OPEN]
    with flow.db.transaction() as session:
        session.execute(
            update(HumanTaskRole)
            .where(HumanTaskRole.role_id == ROLE_PLACEHOLDER)
            .values(role_id=ROLE)
        )
    # the pre-approval attack: a 950,000 USD quotation at 3 % with the script in a start
    # variable of the manager's approval form. A start may no longer set that form's
    # fields (issue 14, point 2): refused, and the order starts without it
    try:
        flow.start(
            "inquiry_to_collection",
            actor="wang.fang",
            business_key="INQ-XSS-0",
            variables={"approval_comment": APPROVE},
        )
    except FormInvalid:
        pass
    else:
        raise AssertionError("a start set the manager's approval comment")
    order = flow.start("inquiry_to_collection", actor="wang.fang", business_key="INQ-XSS-1")
    # the script where a diagram does let a form start from a variable: the probe's
    # review, the manager's, starts from customer_name
    attack = flow.start(
        "xss_probe",
        actor="wang.fang",
        business_key="XSS-ATTACK",
        variables={"customer_name": APPROVE},
    )
    [entering] = flow.tasks_of(attack)
    flow.complete(entering.id, actor="wang.fang", data={"customer_name": APPROVE})
    [attacked] = [t for t in flow.tasks_of(attack) if t.state == TaskState.OPEN]
    [prepare] = [t for t in flow.tasks_of(order) if t.element_id == "prepare_quotation"]
    quotation: dict[str, Any] = {
        **SAMPLES["prepare_quotation"],
        "customer_name": payload("customer-name"),
        "quantity": 38_000,
        "unit_price": 25.0,
        "margin_percent": 3.0,
    }
    flow.complete(prepare.id, actor=DOER["prepare_quotation"], data=quotation)
    [approve] = [
        t
        for t in flow.tasks_of(order)
        if t.element_id == "approve_quotation" and t.state == TaskState.OPEN
    ]
    return {
        "probe": probes[0],
        "enter": enter.id,
        "reviewed": probes[1],
        "review": review.id,
        "order": order,
        "approve": approve.id,
        "attacked": attacked.id,
    }

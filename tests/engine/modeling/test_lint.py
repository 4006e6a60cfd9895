"""Deploy-time lint: a bad deployment raises DiagramInvalid naming file and element for
every problem, and stores nothing at all.

Variants of the shipped diagrams are made from their bytes; small bad cases are inline.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from lxml import etree
from sqlalchemy import func, select

from engine.errors import DiagramInvalid, Problem
from engine.storage import (
    AuditEvent,
    Database,
    Definition,
    DefinitionTask,
    Deployment,
    Form,
    Resource,
)
from engine.tradeflow import Tradeflow
from tests.conftest import FakeClock
from tests.engine.conftest import read

_ID = re.compile(r'\bid="([^"]+)"')
STORED = (Deployment, Definition, DefinitionTask, Resource, Form, AuditEvent)


def counts(flow: Tradeflow) -> dict[str, int]:
    with flow.db.reading() as session:
        return {
            model.__name__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in STORED
        }


@contextmanager
def refused(flow: Tradeflow) -> Iterator[list[Problem]]:
    """Expect DiagramInvalid; yields its problems (filled in on exit) and checks nothing
    was stored."""
    before = counts(flow)
    problems: list[Problem] = []
    with pytest.raises(DiagramInvalid) as raised:
        yield problems
    problems.extend(raised.value.problems)
    assert problems, "DiagramInvalid without problems"
    assert counts(flow) == before, "a refused deployment stored something"


def refuse(flow: Tradeflow, files: list[tuple[str, bytes]]) -> list[Problem]:
    with refused(flow) as problems:
        flow.deploy(files, actor="owner")
    return problems


def the_problem(problems: list[Problem], file: str, element: str | None) -> Problem:
    found = [p for p in problems if p.file == file and p.element == element]
    assert found, f"no problem for {file}:{element} in {problems}"
    return found[0]


def variant(name: str, *replacements: tuple[bytes, bytes]) -> tuple[str, bytes]:
    _, content = read(name)
    for old, new in replacements:
        assert old in content, f"{old!r} not in {name}"
        content = content.replace(old, new)
    return name, content


def bpmn(*nodes: str, conditions: dict[str, str] | None = None, pid: str = "probe") -> bytes:
    """A minimal executable process: start -> nodes... -> end, flows f1..fn in between.

    Each node is the XML of one flow node with an ``id``; ``conditions`` puts a
    conditionExpression on flows by id.
    """
    conditions = conditions or {}
    ids = ["start"] + [_ID.search(node).group(1) for node in nodes] + ["end"]
    flows = []
    for n, (source, target) in enumerate(itertools.pairwise(ids), start=1):
        condition = conditions.get(f"f{n}")
        body = (
            f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{condition}'
            "</bpmn:conditionExpression>"
            if condition is not None
            else ""
        )
        flows.append(
            f'<bpmn:sequenceFlow id="f{n}" sourceRef="{source}" targetRef="{target}">'
            f"{body}</bpmn:sequenceFlow>"
        )
    return _definitions(
        f'<bpmn:process id="{pid}" isExecutable="true">'
        '<bpmn:startEvent id="start" />'
        + "".join(nodes)
        + '<bpmn:endEvent id="end" />'
        + "".join(flows)
        + "</bpmn:process>"
    )


_ATTRS = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
)


def _definitions(body: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<bpmn:definitions {_ATTRS} id="probe_definitions" '
        f'targetNamespace="http://bpmn.io/schema/bpmn">{body}</bpmn:definitions>'
    ).encode()


USER_TASK = '<bpmn:userTask id="{id}" camunda:candidateGroups="finance" />'


def fresh(db: Database, clock: FakeClock) -> Tradeflow:
    return Tradeflow(db, clock)


# --- files that are not diagrams -----------------------------------------------------------


def test_not_well_formed_xml(flow: Tradeflow) -> None:
    _, content = read("document_review.bpmn")
    broken = content.replace(b"</bpmn:process>", b"</bpmn:proces>")
    [problem] = refuse(flow, [("document_review.bpmn", broken)])
    assert problem.file == "document_review.bpmn"
    assert "not well-formed XML" in problem.message
    assert "line" in problem.message  # the parser's position stands in for an element


def test_xml_that_is_neither_bpmn_nor_dmn(flow: Tradeflow) -> None:
    [problem] = refuse(flow, [("page.bpmn", b"<html/>")])
    assert problem.file == "page.bpmn"
    assert "not a BPMN or DMN document" in problem.message
    assert "html" in problem.message


XXE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'
    b'<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" '
    b'targetNamespace="http://bpmn.io/schema/bpmn">'
    b'<bpmn:process id="xxe" name="&e;" isExecutable="true"><bpmn:startEvent id="s" />'
    b"</bpmn:process></bpmn:definitions>"
)


def test_document_type_declarations_and_entities_are_refused(flow: Tradeflow) -> None:
    [problem] = refuse(flow, [("xxe.bpmn", XXE)])
    assert problem.file == "xxe.bpmn"
    assert "entities are not allowed" in problem.message
    assert "root:" not in str(problem)


def test_an_entity_without_a_doctype_at_the_top_is_refused_too(flow: Tradeflow) -> None:
    _, content = read("customer_grade.dmn")
    sneaky = content.replace(b"<definitions ", b'<!-- <!ENTITY e "x"> --><definitions ', 1)
    [problem] = refuse(flow, [("customer_grade.dmn", sneaky)])
    assert problem.file == "customer_grade.dmn"


def test_a_file_that_is_not_bpmn_dmn_or_form(flow: Tradeflow) -> None:
    [problem] = refuse(flow, [("notes.txt", b"just some text")])
    assert problem.file == "notes.txt"
    assert "expected a .bpmn, .dmn or .form file" in problem.message


def test_a_form_that_is_not_json(flow: Tradeflow) -> None:
    [problem] = refuse(flow, [("write_off.form", b"<form/>")])
    assert problem.file == "write_off.form"
    assert "not JSON" in problem.message


def test_one_bad_file_refuses_the_whole_deployment(flow: Tradeflow) -> None:
    changed = variant(
        "document_review.bpmn", (b'name="Review documents"', b'name="Check the documents"')
    )
    problems = refuse(flow, [changed, ("notes.txt", b"x")])
    assert [p.file for p in problems] == ["notes.txt"]


# --- routing and forms ---------------------------------------------------------------------


def test_a_user_task_routed_to_no_role(flow: Tradeflow) -> None:
    # write_off gets its role from the Finance lane only: take it out of the lane
    unrouted = variant(
        "payment_collection.bpmn", (b"<bpmn:flowNodeRef>write_off</bpmn:flowNodeRef>", b"")
    )
    [problem] = refuse(flow, [unrouted])
    assert (problem.file, problem.element) == ("payment_collection.bpmn", "write_off")
    assert "routed to no role" in problem.message


def test_an_inline_user_task_with_no_candidate_groups_and_no_lane(flow: Tradeflow) -> None:
    [problem] = refuse(flow, [("probe.bpmn", bpmn('<bpmn:userTask id="nobody" />'))])
    assert (problem.file, problem.element) == ("probe.bpmn", "nobody")
    assert "routed to no role" in problem.message


def test_a_form_reference_to_no_deployed_form(flow: Tradeflow) -> None:
    missing = variant(
        "payment_collection.bpmn",
        (b'camunda:formKey="write_off"', b'camunda:formKey="no_such_form"'),
    )
    [problem] = refuse(flow, [missing])
    assert (problem.file, problem.element) == ("payment_collection.bpmn", "write_off")
    assert "form 'no_such_form' is not deployed" in problem.message


def test_forms_must_be_deployed_with_or_before_the_diagram(db: Database, clock: FakeClock) -> None:
    flow = fresh(db, clock)
    problems = refuse(flow, [read("document_review.bpmn")])
    assert {(p.file, p.element) for p in problems} == {
        ("document_review.bpmn", "prepare_documents"),
        ("document_review.bpmn", "review_documents"),
    }
    assert all("is not deployed" in p.message for p in problems)


def test_separate_from_must_name_an_element(flow: Tradeflow) -> None:
    bad = variant(
        "document_review.bpmn",
        (
            b'name="separateFrom" value="prepare_documents"',
            b'name="separateFrom" value="prepare_paperwork"',
        ),
    )
    [problem] = refuse(flow, [bad])
    assert (problem.file, problem.element) == ("document_review.bpmn", "review_documents")
    assert "prepare_paperwork" in problem.message


@pytest.mark.parametrize(
    ("sla", "reason"),
    [("P1M", "months"), ("soon", "not an ISO 8601 duration"), ("PT", "not an ISO 8601")],
)
def test_an_sla_must_be_a_business_duration(flow: Tradeflow, sla: str, reason: str) -> None:
    bad = variant(
        "document_review.bpmn", (b'name="sla" value="PT8H"', f'name="sla" value="{sla}"'.encode())
    )
    [problem] = refuse(flow, [bad])
    assert (problem.file, problem.element) == ("document_review.bpmn", "review_documents")
    assert f"sla '{sla}' refused" in problem.message and reason in problem.message


def test_escalation_names_role_ids(flow: Tradeflow) -> None:
    bad = variant(
        "document_review.bpmn",
        (
            b'name="sla" value="PT8H" />',
            b'name="sla" value="PT8H" />'
            b'<camunda:property name="escalateTo" value="manager, Head Office" />',
        ),
    )
    [problem] = refuse(flow, [bad])
    assert problem.element == "review_documents"
    assert "escalateTo 'Head Office' is not a role id" in problem.message


def test_business_time_is_for_durations(flow: Tradeflow) -> None:
    timer_date = (
        '<bpmn:intermediateCatchEvent id="wait"><bpmn:extensionElements><camunda:properties>'
        '<camunda:property name="calendar" value="business" /></camunda:properties>'
        "</bpmn:extensionElements><bpmn:timerEventDefinition><bpmn:timeDate "
        'xsi:type="bpmn:tFormalExpression">"2027-01-04T09:00:00+08:00"</bpmn:timeDate>'
        "</bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"
    )
    [problem] = refuse(flow, [("probe.bpmn", bpmn(timer_date))])
    assert (problem.element, problem.message) == (
        "wait",
        "calendar 'business' applies to timeDuration timers only",
    )


# --- expressions the evaluator refuses ------------------------------------------------------


def test_a_condition_that_imports(flow: Tradeflow) -> None:
    bad = variant(
        "document_review.bpmn", (b"documents_ok == True", b"__import__('os').system('id')")
    )
    [problem] = refuse(flow, [bad])
    assert (problem.file, problem.element) == ("document_review.bpmn", "documents_accepted")
    assert "condition" in problem.message
    assert "__import__" in problem.message


def test_a_condition_wrapped_in_juel_is_still_checked(flow: Tradeflow) -> None:
    bad = variant("document_review.bpmn", (b"documents_ok == False", b"${documents_ok.__class__}"))
    [problem] = refuse(flow, [bad])
    assert (problem.file, problem.element) == ("document_review.bpmn", "documents_returned")


def test_a_script_task_that_imports(flow: Tradeflow) -> None:
    bad = variant("credit_check.bpmn", (b"credit_limit = annual_volume * 0.1", b"import os"))
    [problem] = refuse(flow, [bad])
    assert (problem.file, problem.element) == ("credit_check.bpmn", "set_credit_limit")
    assert "import is not allowed" in problem.message


def test_a_decision_cell_with_attribute_access(flow: Tradeflow) -> None:
    bad = variant("customer_grade.dmn", (b"<text>&gt;= 700</text>", b"<text>x.upper()</text>"))
    [problem] = refuse(flow, [bad])
    assert (problem.file, problem.element) == ("customer_grade.dmn", "grade_a_rule")
    assert "attribute access is not allowed" in problem.message


def test_a_decision_output_that_calls_a_builtin(flow: Tradeflow) -> None:
    bad = variant("customer_grade.dmn", (b'<text>"B"</text>', b'<text>open("/etc/passwd")</text>'))
    [problem] = refuse(flow, [bad])
    assert (problem.file, problem.element) == ("customer_grade.dmn", "grade_b_rule")
    assert "open" in problem.message


@pytest.mark.parametrize(
    "value",
    ["__import__('os').getcwd()", "${__import__('os')}", "open('/etc/passwd')", " "],
    ids=["import", "juel-import", "open", "empty"],
)
def test_a_timer_value_that_is_refused(flow: Tradeflow, value: str) -> None:
    bad = variant("payment_collection.bpmn", (b">P30D<", f">{value}<".encode()))
    [problem] = refuse(flow, [bad])
    assert (problem.file, problem.element) == ("payment_collection.bpmn", "payment_overdue")
    assert "timer" in problem.message


# --- references ------------------------------------------------------------------------


def test_a_called_process_that_is_not_deployed(db: Database, clock: FakeClock) -> None:
    flow = fresh(db, clock)
    problems = refuse(flow, [read("order_fulfilment.bpmn")])
    assert {(p.file, p.element) for p in problems} == {
        ("order_fulfilment.bpmn", "shipping_documents"),
        ("order_fulfilment.bpmn", "collect_payment"),
    }
    assert (
        "calls process 'document_review', which is not deployed"
        in the_problem(problems, "order_fulfilment.bpmn", "shipping_documents").message
    )


def test_an_inline_call_to_nowhere(flow: Tradeflow) -> None:
    call = '<bpmn:callActivity id="call_it" calledElement="nowhere" />'
    [problem] = refuse(flow, [("probe.bpmn", bpmn(call))])
    assert (problem.file, problem.element) == ("probe.bpmn", "call_it")
    assert "'nowhere'" in problem.message


def test_a_decision_that_is_not_deployed(db: Database, clock: FakeClock) -> None:
    flow = fresh(db, clock)
    [problem] = refuse(flow, [read("credit_check.bpmn")])
    assert (problem.file, problem.element) == ("credit_check.bpmn", "grade_customer")
    assert "decision 'customer_grade' is not deployed" in problem.message


def test_a_decision_ref_that_names_another_decision(flow: Tradeflow) -> None:
    bad = variant(
        "credit_check.bpmn",
        (b'camunda:decisionRef="customer_grade"', b'camunda:decisionRef="risk_grade"'),
    )
    [problem] = refuse(flow, [bad])
    assert (problem.file, problem.element) == ("credit_check.bpmn", "grade_customer")
    assert "'risk_grade'" in problem.message


# --- what SpiffWorkflow's parser (or the BPMN schema) rejects ---------------------------


def test_an_exclusive_gateway_flow_without_a_condition(flow: Tradeflow) -> None:
    """Valid BPMN by the XSD; Spiff refuses a non-default outgoing flow with no condition."""
    _, content = read("document_review.bpmn")
    root = etree.fromstring(content)
    [flow_node] = root.xpath(
        "//bpmn:sequenceFlow[@id='documents_returned']",
        namespaces={"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL"},
    )
    for child in list(flow_node):
        flow_node.remove(child)
    [problem] = refuse(flow, [("document_review.bpmn", etree.tostring(root))])
    assert (problem.file, problem.element) == ("document_review.bpmn", "documents_returned")
    assert "without condition" in problem.message


def test_a_sequence_flow_to_a_missing_element(flow: Tradeflow) -> None:
    bad = variant(
        "document_review.bpmn",
        (
            b'sourceRef="documents_ok_gateway" targetRef="documents_approved"',
            b'sourceRef="documents_ok_gateway" targetRef="no_such_element"',
        ),
    )
    [problem] = refuse(flow, [bad])
    assert problem.file == "document_review.bpmn"
    # Spiff names the flow's source and the missing target in its message
    assert problem.element == "documents_ok_gateway"
    assert "no_such_element" in problem.message


def test_a_process_without_a_start_event(flow: Tradeflow) -> None:
    bad = (
        bpmn(USER_TASK.format(id="work"))
        .replace(b'<bpmn:startEvent id="start" />', b"")
        .replace(
            b'<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work"></bpmn:sequenceFlow>',
            b"",
        )
    )
    [problem] = refuse(flow, [("probe.bpmn", bad)])
    assert (problem.file, problem.element) == ("probe.bpmn", "probe")
    assert "start event" in problem.message.lower()


def test_a_duplicate_id_is_caught_by_the_schema(flow: Tradeflow) -> None:
    bad = variant(
        "document_review.bpmn",
        (b'<bpmn:endEvent id="documents_approved"', b'<bpmn:endEvent id="prepare_documents"'),
    )
    problems = refuse(flow, [bad])
    problem = problems[0]
    assert problem.file == "document_review.bpmn"
    assert problem.element is not None and problem.element.startswith("line ")
    assert "not valid BPMN" in problem.message


# --- everything at once ------------------------------------------------------------------


def test_every_problem_is_reported_in_one_error(flow: Tradeflow) -> None:
    bad = variant(
        "payment_collection.bpmn",
        (b"<bpmn:flowNodeRef>write_off</bpmn:flowNodeRef>", b""),  # unrouted
        (b'camunda:formRef="issue_invoice"', b'camunda:formRef="missing_form"'),  # no form
        (b"amount_received &gt;= invoice_amount", b"amount_received.real &gt;= 0"),  # refused
        (b">P30D<", b">__import__('time').sleep(9)<"),  # refused timer
    )
    problems = refuse(flow, [bad])
    assert len(problems) >= 4
    assert {p.element for p in problems} >= {
        "write_off",
        "issue_invoice",
        "paid_in_full",
        "payment_overdue",
    }
    assert all(p.file == "payment_collection.bpmn" for p in problems)
    message = str(DiagramInvalid(problems))
    assert f"{len(problems)} problem(s)" in message
    assert "payment_collection.bpmn:write_off" in message


def test_every_problem_of_a_small_inline_diagram_is_reported(flow: Tradeflow) -> None:
    diagram = bpmn(
        '<bpmn:userTask id="nobody" camunda:formRef="ghost_form" />',
        USER_TASK.format(id="fine"),
        conditions={"f2": "__import__('os').system('id')"},
    )
    problems = refuse(flow, [("probe.bpmn", diagram)])
    assert len(problems) == 3
    assert "routed to no role" in the_problem(problems, "probe.bpmn", "nobody").message
    assert any("form 'ghost_form'" in p.message for p in problems if p.element == "nobody")
    assert "condition" in the_problem(problems, "probe.bpmn", "f2").message


def test_problems_across_files_are_all_reported(db: Database, clock: FakeClock) -> None:
    flow = fresh(db, clock)
    bad_dmn = variant("customer_grade.dmn", (b"<text>&gt;= 700</text>", b"<text>x.upper()</text>"))
    problems = refuse(flow, [read("credit_check.bpmn"), bad_dmn, read("order_fulfilment.bpmn")])
    assert {(p.file, p.element) for p in problems} == {
        ("customer_grade.dmn", "grade_a_rule"),
        ("order_fulfilment.bpmn", "shipping_documents"),
        ("order_fulfilment.bpmn", "collect_payment"),
    }


# --- unusual and hostile input ---------------------------------------------------------


def test_a_service_task_is_refused_by_lint(flow: Tradeflow) -> None:
    [problem] = refuse(flow, [("probe.bpmn", bpmn('<bpmn:serviceTask id="call_erp" />'))])
    assert (problem.file, problem.element) == ("probe.bpmn", "call_erp")


def test_a_conditional_event_condition_is_checked(flow: Tradeflow) -> None:
    event = (
        '<bpmn:intermediateCatchEvent id="wait_until"><bpmn:conditionalEventDefinition id="c">'
        '<bpmn:condition xsi:type="bpmn:tFormalExpression">__import__("os").system("id")'
        "</bpmn:condition></bpmn:conditionalEventDefinition></bpmn:intermediateCatchEvent>"
    )
    [problem] = refuse(flow, [("probe.bpmn", bpmn(event))])
    assert (problem.file, problem.element) == ("probe.bpmn", "wait_until")


def test_a_doctype_after_a_long_comment_is_refused(flow: Tradeflow) -> None:
    _, content = read("document_review.bpmn")
    declaration, rest = content.split(b"\n", 1)
    hidden = (
        declaration
        + b"\n<!--"
        + b" " * 5000
        + b"-->\n"
        + b'<!DOCTYPE definitions SYSTEM "file:///etc/passwd">\n'
        + rest
    )
    [problem] = refuse(flow, [("document_review.bpmn", hidden)])
    assert problem.file == "document_review.bpmn"


def test_an_entity_in_a_utf16_file_is_refused(flow: Tradeflow) -> None:
    in_text = XXE.replace(b' name="&e;"', b"").replace(
        b'<bpmn:startEvent id="s" />',
        b'<bpmn:startEvent id="s"><bpmn:documentation>&e;</bpmn:documentation></bpmn:startEvent>',
    )
    utf16 = in_text.replace(b'encoding="UTF-8"', b'encoding="UTF-16"').decode().encode("utf-16")
    [problem] = refuse(flow, [("xxe.bpmn", utf16)])
    assert problem.file == "xxe.bpmn"


def test_a_diagram_that_is_not_utf8_is_refused_or_stored(flow: Tradeflow) -> None:
    _, content = read("document_review.bpmn")
    utf16 = content.replace(b'encoding="UTF-8"', b'encoding="UTF-16"').decode().encode("utf-16")
    try:
        flow.deploy([("document_review.bpmn", utf16)], actor="owner")
    except DiagramInvalid as exc:
        assert [p.file for p in exc.problems] == ["document_review.bpmn"]


def test_business_time_literals_and_gateways(flow: Tradeflow) -> None:
    def business(kind_value: str, before: str = "") -> bytes:
        event = (
            '<bpmn:intermediateCatchEvent id="wait"><bpmn:extensionElements>'
            '<camunda:properties><camunda:property name="calendar" value="business" />'
            "</camunda:properties></bpmn:extensionElements><bpmn:timerEventDefinition>"
            f'<bpmn:timeDuration xsi:type="bpmn:tFormalExpression">{kind_value}'
            "</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"
        )
        return bpmn(*([before] if before else []), event)

    [problem] = refuse(flow, [("probe.bpmn", business("P1M"))])
    assert (problem.element, "months" in problem.message) == ("wait", True)
    gateway = '<bpmn:eventBasedGateway id="g" />'
    [problem] = refuse(flow, [("probe.bpmn", business("PT4H", before=gateway))])
    assert "event-based gateway" in problem.message
    flow.deploy([("probe.bpmn", business('"P" + str(days) + "D"'))], actor="owner")  # data


@pytest.mark.parametrize(
    ("declared", "why"),
    [
        ("amount_received, bank-ref", "'bank-ref', which is no variable name"),
        ("amount_received, __class__", "'__class__', which is no variable name"),
    ],
)
def test_message_variables_are_variable_names(flow: Tradeflow, declared: str, why: str) -> None:
    bad = variant(
        "payment_collection.bpmn",
        (b'value="amount_received, bank_ref"', f'value="{declared}"'.encode()),
    )
    [problem] = refuse(flow, [bad])
    assert (problem.file, problem.element) == ("payment_collection.bpmn", "payment_received")
    assert why in problem.message


def test_an_output_mapping_on_a_message_catch_is_refused_not_ignored(flow: Tradeflow) -> None:
    mapping = (
        b'<camunda:inputOutput><camunda:outputParameter name="paid">${amount_received}'
        b"</camunda:outputParameter></camunda:inputOutput>"
    )
    bad = variant(
        "payment_collection.bpmn",
        (b"</camunda:properties></bpmn:extensionElements>",
         b"</camunda:properties>" + mapping + b"</bpmn:extensionElements>"),
    )  # fmt: skip
    [problem] = refuse(flow, [bad])
    assert problem.element == "payment_received"
    assert "not supported here: camunda:inputOutput" in problem.message
    assert "messageVariables" in problem.message


def test_form_inputs_are_variable_names(flow: Tradeflow) -> None:
    bad = variant(
        "document_review.bpmn",
        (b'value="invoice_number, bill_of_lading_number"', b'value="invoice_number, b/l"'),
    )
    [problem] = refuse(flow, [bad])
    assert (problem.file, problem.element) == ("document_review.bpmn", "prepare_documents")
    assert "formInputs names 'b/l', which is no variable name" in problem.message

"""Deploying diagrams, decisions and forms: keys, versions, Camunda attributes, references.

Every test uses the shipped diagrams in bpmn/ and forms/ (variants are made from their
bytes); only the tests that pin down an engine bug write a small diagram inline.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree
from sqlalchemy import func, select

from engine.audit import DEFINITIONS_STREAM, EventKind
from engine.clock import as_utc
from engine.errors import DefinitionNotFound
from engine.modeling import diagrams
from engine.storage import AuditEvent, Database, Definition, DefinitionTask, Form, InstanceStatus
from engine.tradeflow import Tradeflow
from tests.conftest import FakeClock
from tests.engine.conftest import Scenario, fixture_files, read

PROCESS_KEYS = ["credit_check", "document_review", "order_fulfilment", "payment_collection"]
FORM_KEYS = ["issue_invoice", "prepare_documents", "review_documents", "write_off"]
FORM_FILES = [f"{key}.form" for key in FORM_KEYS]
TOLERANCE = timedelta(minutes=1)


def rows(flow: Tradeflow, model: type) -> int:
    with flow.db.reading() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def deployed_events(flow: Tradeflow) -> list[AuditEvent]:
    with flow.db.reading() as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.stream == DEFINITIONS_STREAM)
                .order_by(AuditEvent.seq)
            )
        )


def task_rows(flow: Tradeflow, key: str, version: int | None = None) -> dict[str, DefinitionTask]:
    """The DefinitionTask rows of a definition (latest unless given), by element id."""
    with flow.db.reading() as session:
        query = select(Definition).where(Definition.key == key)
        if version is not None:
            query = query.where(Definition.version == version)
        definition = session.scalars(query.order_by(Definition.version.desc()).limit(1)).one()
        return {t.element_id: t for t in definition.tasks}


def variant(name: str, *replacements: tuple[bytes, bytes]) -> tuple[str, bytes]:
    """A shipped file with some text replaced; each replacement must apply."""
    _, content = read(name)
    for old, new in replacements:
        assert old in content, f"{old!r} not in {name}"
        content = content.replace(old, new)
    return name, content


def fresh(db: Database, clock: FakeClock) -> Tradeflow:
    return Tradeflow(db, clock)


# --- keys and versions ------------------------------------------------------------------


def test_shipped_bundle_deploys_each_process_and_form_as_version_1(
    db: Database, clock: FakeClock
) -> None:
    flow = fresh(db, clock)
    result = flow.deploy(fixture_files(), actor="owner")

    assert result.deployment_id is not None
    assert sorted((d.key, d.version, d.created) for d in result.definitions) == [
        (key, 1, True) for key in PROCESS_KEYS
    ]
    assert sorted((f.key, f.version, f.created) for f in result.forms) == [
        (key, 1, True) for key in FORM_KEYS
    ]
    with flow.db.reading() as session:
        stored = session.scalars(select(Definition).order_by(Definition.key)).all()
        assert [(d.key, d.version, d.name) for d in stored] == [
            ("credit_check", 1, "Customer credit check"),
            ("document_review", 1, "Shipping documents"),
            ("order_fulfilment", 1, "Order fulfilment"),
            ("payment_collection", 1, "Payment collection"),
        ]
        assert {d.definition_id for d in result.definitions} == {d.id for d in stored}
        forms = session.scalars(select(Form).order_by(Form.key)).all()
        assert [(f.key, f.version) for f in forms] == [(key, 1) for key in FORM_KEYS]
    # the key is the process id: it starts by that key
    iid = flow.start("document_review", actor="clerk")
    assert flow.instance(iid).definition.key == "document_review"
    events = deployed_events(flow)
    assert sorted(e.element_id for e in events if e.kind == EventKind.DEFINITION_DEPLOYED) == (
        PROCESS_KEYS
    )
    assert [(e.kind, e.element_id) for e in events if e.element_id not in PROCESS_KEYS] == [
        (EventKind.DECISION_DEPLOYED, "customer_grade")
    ]


def test_identical_content_adds_no_version_and_no_audit_event(flow: Tradeflow) -> None:
    definitions_before = rows(flow, Definition)
    tasks_before = rows(flow, DefinitionTask)
    forms_before = rows(flow, Form)
    events_before = len(deployed_events(flow))
    assert events_before == len(PROCESS_KEYS) + 1  # and the decision

    result = flow.deploy(fixture_files(), actor="owner")

    assert sorted((d.key, d.version, d.created) for d in result.definitions) == [
        (key, 1, False) for key in PROCESS_KEYS
    ]
    assert sorted((f.key, f.version, f.created) for f in result.forms) == [
        (key, 1, False) for key in FORM_KEYS
    ]
    assert rows(flow, Definition) == definitions_before
    assert rows(flow, DefinitionTask) == tasks_before
    assert rows(flow, Form) == forms_before
    assert len(deployed_events(flow)) == events_before
    assert flow.verify(DEFINITIONS_STREAM).ok


def test_changed_form_gets_version_2_and_only_that_form(flow: Tradeflow) -> None:
    changed = variant("write_off.form", (b'"Settled amount (CNY)"', b'"Settled amount in CNY"'))
    result = flow.deploy([read("issue_invoice.form"), changed], actor="owner")

    assert sorted((f.key, f.version, f.created) for f in result.forms) == [
        ("issue_invoice", 1, False),
        ("write_off", 2, True),
    ]
    assert result.definitions == []
    with flow.db.reading() as session:
        versions = session.scalars(
            select(Form.version).where(Form.key == "write_off").order_by(Form.version)
        ).all()
    assert versions == [1, 2]


def test_changed_diagram_gets_version_2_and_running_instances_stay_on_version_1(
    scenario: Scenario,
) -> None:
    flow = scenario.flow
    on_v1 = flow.start("document_review", actor="clerk", business_key="SO-1")
    events_before = len(deployed_events(flow))

    changed = variant(
        "document_review.bpmn", (b'name="Review documents"', b'name="Check the documents"')
    )
    result = flow.deploy([changed], actor="owner")

    [deployed] = result.definitions
    assert (deployed.key, deployed.version, deployed.created) == ("document_review", 2, True)
    [event] = deployed_events(flow)[events_before:]
    assert event.data["key"] == "document_review"
    assert event.data["version"] == 2
    assert task_rows(flow, "document_review", 1)["review_documents"].name == "Review documents"
    assert task_rows(flow, "document_review", 2)["review_documents"].name == "Check the documents"

    on_v2 = flow.start("document_review", actor="clerk", business_key="SO-2")
    pinned = flow.start("document_review", actor="clerk", business_key="SO-3", version=1)
    assert flow.instance(on_v1).definition.version == 1
    assert flow.instance(on_v2).definition_id == deployed.definition_id
    assert flow.instance(on_v2).definition.version == 2
    assert flow.instance(pinned).definition.version == 1

    # each instance runs its own version to the end
    for iid, review_name in (
        (on_v1, "Review documents"),
        (on_v2, "Check the documents"),
        (pinned, "Review documents"),
    ):
        scenario.complete(iid, "prepare_documents", by="clerk", invoice_number=f"INV-{iid}")
        review = scenario.complete(iid, "review_documents", by="checker", documents_ok=True)
        assert review.name == review_name
        assert flow.instance(iid).status == InstanceStatus.COMPLETED

    # deploying v2's content again adds nothing
    again = flow.deploy([changed], actor="owner")
    assert [(d.version, d.created) for d in again.definitions] == [(2, False)]


def test_starting_an_unknown_key_or_version_raises_definition_not_found(flow: Tradeflow) -> None:
    with pytest.raises(DefinitionNotFound):
        flow.start("no_such_process", actor="clerk")
    with pytest.raises(DefinitionNotFound):
        flow.start("document_review", actor="clerk", version=2)
    with pytest.raises(DefinitionNotFound):
        flow.start("document_review", actor="clerk", version=0)


# --- Camunda attributes ---------------------------------------------------------------


def test_camunda_attributes_are_extracted_into_definition_tasks(flow: Tradeflow) -> None:
    review = task_rows(flow, "document_review")
    # candidateGroups, formRef, camunda:properties separateFrom
    assert review["review_documents"].roles == ["risk_compliance"]
    assert review["review_documents"].form_key == "review_documents"
    assert review["review_documents"].separate_from == ["prepare_documents"]
    assert review["review_documents"].properties == {
        "separateFrom": "prepare_documents",
        "sla": "PT8H",
    }
    # no candidateGroups: the lane "Documents and Logistics" routes it
    assert review["prepare_documents"].roles == ["documents_logistics"]
    assert review["prepare_documents"].form_key == "prepare_documents"
    assert review["prepare_documents"].separate_from == []
    assert review["prepare_documents"].priority == 50

    payment = task_rows(flow, "payment_collection")
    assert payment["write_off"].form_key == "write_off"  # camunda:formKey
    assert payment["write_off"].roles == ["finance"]  # lane "Finance"
    assert payment["issue_invoice"].form_key == "issue_invoice"
    assert payment["chase_payment"].form_key is None

    credit = task_rows(flow, "credit_check")
    assert credit["approve_credit"].priority == 80  # camunda:property priority
    assert credit["approve_credit"].roles == ["manager"]


def test_the_rows_route_real_tasks(scenario: Scenario) -> None:
    flow = scenario.flow
    iid = flow.start("document_review", actor="clerk")
    task = scenario.open_task(iid, "prepare_documents")
    assert task.role_ids == ["documents_logistics"]
    assert task.form_key == "prepare_documents"
    scenario.complete(iid, "prepare_documents", by="clerk", invoice_number="INV-1")
    task = scenario.open_task(iid, "review_documents")
    assert task.role_ids == ["risk_compliance"]
    assert task.form_key == "review_documents"


def test_form_key_with_camunda_deployment_prefix_resolves_to_the_form(flow: Tradeflow) -> None:
    changed = variant(
        "payment_collection.bpmn",
        (
            b'camunda:formKey="write_off"',
            b'camunda:formKey="camunda-forms:deployment:write_off.form"',
        ),
    )
    [deployed] = flow.deploy([changed], actor="owner").definitions
    assert deployed.version == 2
    assert task_rows(flow, "payment_collection", 2)["write_off"].form_key == "write_off"


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ('camunda:formKey="camunda-forms:deployment:write_off.form"', "write_off"),
        ('camunda:formKey="camunda-forms:app:write_off.form"', "write_off"),
        ('camunda:formKey="embedded:deployment:write_off.form"', "write_off"),
        ('camunda:formKey="write_off"', "write_off"),
        ('camunda:formRef="review_documents" camunda:formKey="ignored"', "review_documents"),
        ('camunda:formKey="  "', None),
        ("", None),
    ],
)
def test_form_key_of(attributes: str, expected: str | None) -> None:
    node = etree.fromstring(
        f'<bpmn:userTask xmlns:bpmn="{diagrams.BPMN_NS}" xmlns:camunda="{diagrams.CAMUNDA_NS}"'
        f' id="t" {attributes}/>'
    )
    assert diagrams.form_key_of(node) == expected


@pytest.mark.parametrize(
    ("lane", "role"),
    [
        ("Documents and Logistics", "documents_logistics"),
        ("Risk & Compliance", "risk_compliance"),
        ("Risk and Compliance", "risk_compliance"),
        ("Finance", "finance"),
        ("Order Execution", "order_execution"),
    ],
)
def test_lane_names_normalise_to_role_ids(lane: str, role: str) -> None:
    assert diagrams.role_id(lane) == role


def test_a_lane_named_with_an_ampersand_routes_to_the_same_role(flow: Tradeflow) -> None:
    changed = variant(
        "document_review.bpmn",
        (b'name="Documents and Logistics"', b'name="Documents &amp; Logistics"'),
    )
    flow.deploy([changed], actor="owner")
    assert task_rows(flow, "document_review", 2)["prepare_documents"].roles == [
        "documents_logistics"
    ]


# --- references to earlier deployments --------------------------------------------------


def test_called_processes_deployed_earlier_resolve(db: Database, clock: FakeClock) -> None:
    flow = fresh(db, clock)
    flow.deploy(
        [
            read("document_review.bpmn"),
            read("prepare_documents.form"),
            read("review_documents.form"),
        ],
        actor="owner",
    )
    flow.deploy(
        [read("payment_collection.bpmn"), read("issue_invoice.form"), read("write_off.form")],
        actor="owner",
    )

    result = flow.deploy([read("order_fulfilment.bpmn")], actor="owner")

    assert [(d.key, d.version, d.created) for d in result.definitions] == [
        ("order_fulfilment", 1, True)
    ]
    # the called processes' user tasks are routed by the caller's own rows
    with flow.db.reading() as session:
        definition = session.get_one(Definition, result.definitions[0].definition_id)
        routed = {(t.process_id, t.element_id): t.roles for t in definition.tasks}
    assert routed == {
        ("order_fulfilment", "confirm_order"): ["order_execution"],
        ("document_review", "prepare_documents"): ["documents_logistics"],
        ("document_review", "review_documents"): ["risk_compliance"],
        ("payment_collection", "issue_invoice"): ["finance"],
        ("payment_collection", "write_off"): ["finance"],
        ("payment_collection", "chase_payment"): ["risk_compliance"],
    }
    # and the called process really runs inside the caller
    flow.add_user("sales", ["order_execution"])
    flow.add_user("clerk", ["documents_logistics"])
    scenario = Scenario(flow)
    iid = flow.start("order_fulfilment", actor="sales")
    scenario.complete(iid, "confirm_order", by="sales")
    task = scenario.open_task(iid, "prepare_documents")
    assert task.role_ids == ["documents_logistics"]
    assert task.form_key == "prepare_documents"


def test_a_decision_deployed_earlier_resolves(db: Database, clock: FakeClock) -> None:
    flow = fresh(db, clock)
    assert flow.deploy([read("customer_grade.dmn")], actor="owner").definitions == []

    result = flow.deploy([read("credit_check.bpmn")], actor="owner")

    assert [(d.key, d.version) for d in result.definitions] == [("credit_check", 1)]
    iid = flow.start(
        "credit_check", actor="boss", variables={"annual_volume": 2_000_000, "credit_score": 750}
    )
    assert flow.instance(iid).status == InstanceStatus.COMPLETED
    assert flow.variables(iid)["grade"] == "A"


# --- timers -----------------------------------------------------------------------------

UNQUOTED = ("payment_collection.bpmn",)
QUOTED = ("payment_collection.bpmn", (b">P30D<", b'>"P30D"<'))


def _await_payment(scenario: Scenario, files: tuple) -> tuple[int, datetime]:
    """Deploy the payment_collection variant, start it and issue the invoice."""
    flow = scenario.flow
    file = variant(*files)
    [deployed] = flow.deploy([file], actor="owner").definitions
    iid = flow.start("payment_collection", actor="cashier", version=deployed.version)
    scenario.complete(iid, "issue_invoice", by="cashier", invoice_amount=100.0, currency="USD")
    return iid, datetime.now(UTC)


@pytest.mark.parametrize("files", [UNQUOTED, QUOTED], ids=["unquoted", "quoted"])
def test_iso_timer_is_accepted_quoted_or_not_and_evaluates(
    scenario: Scenario, files: tuple
) -> None:
    flow = scenario.flow
    iid, now = _await_payment(scenario, files)

    instance = flow.instance(iid)
    assert instance.status == InstanceStatus.RUNNING
    assert instance.next_wakeup_at is not None
    # Spiff's timers read the real clock, not the engine's
    assert abs(as_utc(instance.next_wakeup_at) - (now + timedelta(days=30))) < TOLERANCE
    assert flow.wake(iid) == []  # not due yet


# --- decisions --------------------------------------------------------------------------


def test_decision_grades_a_big_customer_and_the_process_completes(flow: Tradeflow) -> None:
    iid = flow.start(
        "credit_check", actor="boss", variables={"annual_volume": 2_000_000, "credit_score": 750}
    )
    assert flow.instance(iid).status == InstanceStatus.COMPLETED
    found = flow.variables(iid)
    assert found["grade"] == "A"
    assert found["credit_limit"] == 200000.0
    assert flow.tasks_of(iid) == []


def test_decision_grades_a_small_customer_c_and_asks_a_manager(scenario: Scenario) -> None:
    flow = scenario.flow
    iid = flow.start(
        "credit_check", actor="boss", variables={"annual_volume": 50_000, "credit_score": 800}
    )
    assert flow.instance(iid).status == InstanceStatus.RUNNING
    assert flow.variables(iid)["grade"] == "C"
    task = scenario.open_task(iid, "approve_credit")
    assert task.role_ids == ["manager"]
    assert task.priority == 80
    scenario.complete(iid, "approve_credit", by="boss")
    assert flow.instance(iid).status == InstanceStatus.COMPLETED


# --- several processes in one file -------------------------------------------------

_CALLER_AND_CALLED_IN_ONE_FILE = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs"
    targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="outer" isExecutable="true">
    <bpmn:startEvent id="outer_start" />
    <bpmn:callActivity id="call_inner" calledElement="inner" />
    <bpmn:endEvent id="outer_end" />
    <bpmn:sequenceFlow id="o1" sourceRef="outer_start" targetRef="call_inner" />
    <bpmn:sequenceFlow id="o2" sourceRef="call_inner" targetRef="outer_end" />
  </bpmn:process>
  <bpmn:process id="inner" isExecutable="true">
    <bpmn:startEvent id="inner_start" />
    <bpmn:userTask id="inner_task" camunda:candidateGroups="finance" />
    <bpmn:endEvent id="inner_end" />
    <bpmn:sequenceFlow id="i1" sourceRef="inner_start" targetRef="inner_task" />
    <bpmn:sequenceFlow id="i2" sourceRef="inner_task" targetRef="inner_end" />
  </bpmn:process>
</bpmn:definitions>"""


def test_a_file_whose_process_calls_another_process_in_the_same_file(flow: Tradeflow) -> None:
    """Each definition gets its own process's task rows, plus those of what it calls."""
    result = flow.deploy([("outer_inner.bpmn", _CALLER_AND_CALLED_IN_ONE_FILE)], actor="owner")
    assert sorted(d.key for d in result.definitions) == ["inner", "outer"]
    assert set(task_rows(flow, "outer")) == {"inner_task"}
    assert set(task_rows(flow, "inner")) == {"inner_task"}


def test_two_deployments_at_once_take_consecutive_versions(db: Database, clock: FakeClock) -> None:
    import threading

    flow = Tradeflow(db, clock)
    flow.deploy(fixture_files(), actor="owner")
    _, original = read("document_review.bpmn")
    variants = [
        original.replace(b'name="Review documents"', f'name="Review, take {n}"'.encode())
        for n in range(2)
    ]
    barrier = threading.Barrier(2)
    results: list[int] = []

    def deploy(content: bytes) -> None:
        barrier.wait()
        deployed = flow.deploy([("document_review.bpmn", content)], actor="owner")
        results.extend(d.version for d in deployed.definitions if d.key == "document_review")

    threads = [threading.Thread(target=deploy, args=(v,)) for v in variants]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == [2, 3]
    assert flow.verify("definitions").ok

"""Diagrams, forms and data that would hang or flood the service, over HTTP.

What can be seen in the upload is refused at deploy, naming the element or the form's
field. The rest runs on the command's budget (engine/execution/limits.py): past it the command is
stopped, rolled back and answered with a 422 ``budget-exceeded`` naming the element and
the budget spent, and the service goes on answering.
"""

from __future__ import annotations

import gc
import json
import time
from typing import Any

import pytest
from sqlalchemy import select

from engine.execution import Limits
from engine.storage import Deployment, Form
from tests.api.conftest import V1, ApiClient, multipart, ok, problem
from tests.engine.modeling.test_lint import _definitions, bpmn

# start -> count -> more? -> count ... : the count only grows, so the loop never ends,
# and nothing in it waits (lint can't tell: the conditions read the data). Each round
# also walks `pad`, if given: slow rounds, for a test of the time budget
GATEWAY_LOOP = _definitions(
    '<bpmn:process id="probe" isExecutable="true"><bpmn:startEvent id="start" />'
    '<bpmn:scriptTask id="count"><bpmn:script>n = get("n", 0) + 1\n'
    + "\n".join(f'walked{k} = len([x for x in get("pad", [])])' for k in range(4))
    + "</bpmn:script></bpmn:scriptTask>"
    '<bpmn:exclusiveGateway id="more" /><bpmn:endEvent id="end" />'
    '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="count" />'
    '<bpmn:sequenceFlow id="f2" sourceRef="count" targetRef="more" />'
    '<bpmn:sequenceFlow id="again" sourceRef="more" targetRef="count">'
    '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">n &gt; 0'
    "</bpmn:conditionExpression></bpmn:sequenceFlow>"
    '<bpmn:sequenceFlow id="done" sourceRef="more" targetRef="end">'
    '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">n &lt;= 0'
    "</bpmn:conditionExpression></bpmn:sequenceFlow></bpmn:process>"
)
# calls itself after a conditional event: lint counts the event as a wait state (it
# waits while its condition is false), but with `go` true it goes straight on
SELF_CALL_WHEN = bpmn(
    '<bpmn:intermediateCatchEvent id="when"><bpmn:conditionalEventDefinition>'
    '<bpmn:condition xsi:type="bpmn:tFormalExpression">go</bpmn:condition>'
    "</bpmn:conditionalEventDefinition></bpmn:intermediateCatchEvent>",
    '<bpmn:callActivity id="again" calledElement="probe" />',
)


def script(*lines: str) -> bytes:
    body = "\n".join(lines)
    return bpmn(f'<bpmn:scriptTask id="work"><bpmn:script>{body}</bpmn:script></bpmn:scriptTask>')


def refused_start(client: ApiClient, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """Start ``probe``: a 422 that changed nothing, and the service still answers."""
    with client.unchanged():
        response = client.post(
            f"{V1}/instances", "owner", json={"definition": "probe", "variables": variables or {}}
        )
        body = problem(response, 422)
    ok(client.get(f"{V1}/health"))
    return body


def refused_deploy(client: ApiClient, name: str, content: bytes) -> list[dict[str, Any]]:
    """Deploy one file: a 422 diagram-invalid that stored nothing; its errors."""
    with client.unchanged():
        response = client.post(
            f"{V1}/definitions",
            "owner",
            data=multipart([(name, content)]),
            content_type="multipart/form-data",
        )
        errors: list[dict[str, Any]] = problem(response, 422, "diagram-invalid")["errors"]
    return errors


def test_a_process_calling_itself_without_waiting_is_refused_at_deploy(
    client: ApiClient,
) -> None:
    content = bpmn('<bpmn:callActivity id="again" calledElement="probe" />')
    [error] = refused_deploy(client, "probe.bpmn", content)
    assert (error["file"], error["element"]) == ("probe.bpmn", "again")
    assert "probe → probe" in error["message"] and "wait state" in error["message"]


def test_a_self_call_the_data_sends_round_at_once_is_stopped_by_the_step_budget(
    client: ApiClient,
) -> None:
    client.deploy([("probe.bpmn", SELF_CALL_WHEN)])
    client.flow.runtime.limits = Limits(max_steps=100)
    began = time.thread_time()  # the test client runs the request in this thread
    body = refused_start(client, {"go": True})
    assert time.thread_time() - began < 5
    assert body["type"] == "urn:tradeflow:problem:budget-exceeded"
    assert body["budget"] == "steps" and body["element"]
    assert "100 engine steps" in body["detail"] and "TRADEFLOW_COMMAND_MAX_STEPS" in body["detail"]
    # with `go` false the same diagram waits at the event, as drawn
    assert client.start("probe", "owner", variables={"go": False})


def test_a_gateway_loop_that_never_waits_is_stopped(client: ApiClient) -> None:
    """With the default limits: stopped within their seconds, by steps or time."""
    client.deploy([("probe.bpmn", GATEWAY_LOOP)])
    began = time.thread_time()
    body = refused_start(client)
    assert time.thread_time() - began < Limits().max_seconds + 3
    assert body["type"] == "urn:tradeflow:problem:budget-exceeded"
    assert body["element"] in ("count", "more")


def test_a_script_that_burns_cpu_is_stopped_by_the_time_budget(client: ApiClient) -> None:
    """Each line is within every per-expression limit (10,000 rounds of a sum): together
    they take most of a minute. The evaluator looks at the clock as it goes."""
    client.deploy(
        [("probe.bpmn", script(*[f"x{n} = [sum(data) for y in data]" for n in range(60)]))]
    )
    client.flow.runtime.limits = Limits(max_seconds=0.5)
    gc.collect()
    began = time.thread_time()
    body = refused_start(client, {"data": list(range(10_000))})
    assert time.thread_time() - began < 2
    assert (body["budget"], body["element"]) == ("seconds", "work")
    assert "0.5 s" in body["detail"]


def test_slices_count_as_built_data(client: ApiClient) -> None:
    """`data[:]` copies: charged before it is made. Fifty copies of 60,000 items would
    otherwise be three million items kept in the instance's state."""
    client.deploy([("probe.bpmn", script(*[f"copy{n} = data[:]" for n in range(50)]))])
    body = refused_start(client, {"data": [0] * 60_000})
    assert body["type"] == "urn:tradeflow:problem:process-failed"
    assert "builds too much data" in body["detail"]


def test_what_a_command_builds_in_all_its_expressions_is_bounded(client: ApiClient) -> None:
    """Each script builds under its own limit; the command's total stops the second."""
    first = '<bpmn:scriptTask id="one"><bpmn:script>a = data[::1]</bpmn:script></bpmn:scriptTask>'
    second = '<bpmn:scriptTask id="two"><bpmn:script>b = data[::1]</bpmn:script></bpmn:scriptTask>'
    client.deploy([("probe.bpmn", bpmn(first, second))])
    client.flow.runtime.limits = Limits(max_built=100_000)
    body = refused_start(client, {"data": [0] * 60_000})
    assert (body["budget"], body["element"]) == ("built", "two")
    assert "100,000" in body["detail"]


# --- timer cycles --------------------------------------------------------------------------


def cycle(where: str) -> bytes:
    definition = (
        "<bpmn:timerEventDefinition><bpmn:timeCycle>R/PT0.001S</bpmn:timeCycle>"
        "</bpmn:timerEventDefinition>"
    )
    if where == "start":
        return bpmn().replace(
            b'<bpmn:startEvent id="start" />',
            f'<bpmn:startEvent id="start">{definition}</bpmn:startEvent>'.encode(),
        )
    return bpmn(
        '<bpmn:userTask id="answer" camunda:candidateGroups="finance" />',
        f'<bpmn:boundaryEvent id="remind" attachedToRef="answer" cancelActivity="false">'
        f"{definition}</bpmn:boundaryEvent>",
    )


@pytest.mark.parametrize("where", ["start", "boundary"])
def test_a_timer_cycle_of_a_millisecond_is_refused_at_deploy(client: ApiClient, where: str) -> None:
    [error] = refused_deploy(client, "probe.bpmn", cycle(where))
    assert error["element"] == ("start" if where == "start" else "remind")
    assert (
        "every 0.001 s" in error["message"] and "TRADEFLOW_MIN_TIMER_INTERVAL" in error["message"]
    )


def test_a_cycle_computed_from_the_data_below_the_minimum_fails_the_start(
    client: ApiClient,
) -> None:
    boundary = cycle("boundary").replace(b"R/PT0.001S", b'"R/PT" + str(seconds) + "S"')
    client.deploy([("probe.bpmn", boundary)])
    body = refused_start(client, {"seconds": 1})
    assert body["type"] == "urn:tradeflow:problem:process-failed"
    assert "'remind'" in body["detail"] and "every 1 s" in body["detail"]
    assert client.start("probe", "owner", variables={"seconds": 3600})  # an hour is fine


# --- form patterns -------------------------------------------------------------------------


def form(pattern: str, key: str = "probe_form") -> bytes:
    return json.dumps(
        {
            "id": key,
            "type": "default",
            "components": [
                {
                    "type": "textfield",
                    "key": "code",
                    "label": "Code",
                    "validate": {"pattern": pattern},
                }
            ],
        }
    ).encode()


FILL = bpmn(
    '<bpmn:userTask id="fill" camunda:candidateGroups="finance" camunda:formRef="probe_form" />'
)


def test_a_pattern_that_backtracks_is_checked_in_linear_time(client: ApiClient) -> None:
    """`^(a+)+$` takes Python's re about a minute on thirty 'a's and a '!'; RE2 no time."""
    client.deploy([("probe.form", form("^(a+)+$")), ("probe.bpmn", FILL)])
    iid = client.start("probe", "cashier")
    task = client.task(iid, "fill")
    gc.collect()
    began = time.thread_time()
    with client.unchanged():
        response = client.post(
            f"{V1}/tasks/{task}/complete", "cashier", json={"data": {"code": "a" * 40 + "!"}}
        )
        body = problem(response, 422, "form-invalid")
    assert time.thread_time() - began < 0.2
    assert body["errors"] == [{"field": "code", "message": "Does not match ^(a+)+$."}]
    client.complete(task, "cashier", code="aaaa")


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ("[a-", "RE2"),
        ("(?<=PO-)[0-9]+", "lookaround"),
        (r"^(\d)\1$", "backreference"),
        ("(?i)po-[0-9]+", "inline flags"),
        ("x" * 1001, "longer than 1000"),
    ],
)
def test_a_pattern_the_server_cannot_run_as_the_browser_does_is_refused_at_deploy(
    client: ApiClient, pattern: str, words: str
) -> None:
    [error] = refused_deploy(client, "probe.form", form(pattern))
    assert (error["file"], error["element"]) == ("probe.form", "code")
    assert words in error["message"], error


def test_a_bad_pattern_stored_before_the_check_answers_422_not_500(client: ApiClient) -> None:
    """A form version stored as deploys stored them before patterns were checked: each
    submission is refused with the form and the field named."""
    client.deploy([("probe.form", form("^[A-Z]+$")), ("probe.bpmn", FILL)])
    with client.flow.db.transaction() as session:
        deployment = Deployment(deployed_at=client.clock.now(), deployed_by="owner")
        session.add(deployment)
        session.flush()
        schema = json.loads(form("(?<=x)[a-"))
        session.add(
            Form(
                key="probe_form",
                version=2,
                deployment_id=deployment.id,
                sha256="0" * 64,
                schema=schema,
            )
        )
    with client.flow.db.reading() as session:
        assert session.scalar(select(Form.version).where(Form.version == 2)) == 2
    iid = client.start("probe", "cashier")
    task = client.task(iid, "fill")
    with client.unchanged():
        response = client.post(
            f"{V1}/tasks/{task}/complete", "cashier", json={"data": {"code": "AB"}}
        )
        body = problem(response, 422, "form-invalid")
    assert "probe_form" in body["detail"] and "'code'" in body["detail"]

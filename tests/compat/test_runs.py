"""Constructs that run as Camunda 7 runs them, each in a diagram of its own, driven through
the HTTP API: deployed without a warning, started, worked, and read back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import V1, ApiClient, multipart, ok
from tests.compat.test_expressions import refused
from tests.compat.test_refused import bpmn
from tests.diagrams import diagram, seq, user


def instance(client: ApiClient, instance_id: int) -> dict[str, Any]:
    return dict(ok(client.get(f"{V1}/instances/{instance_id}", "admin")))


def deployed_quietly(client: ApiClient, files: list[tuple[str, bytes]]) -> None:
    assert client.deploy(files)["warnings"] == []


def test_a_task_without_a_type_passes_the_token_on(client: ApiClient) -> None:
    deployed_quietly(client, [bpmn(
        '<bpmn:startEvent id="s"/><bpmn:task id="note" name="Note the order"/>'
        + user("after") + '<bpmn:endEvent id="e"/>'
        + seq("s", "note") + seq("note", "after") + seq("after", "e")
    )])  # fmt: skip
    started = client.start("compat", "clerk")
    assert client.open_elements(started) == ["after"]
    client.complete(client.task(started, "after"), "cashier")
    assert instance(client, started)["status"] == "completed"


def test_a_path_without_an_end_event_ends_there(client: ApiClient) -> None:
    deployed_quietly(client, [bpmn('<bpmn:startEvent id="s"/>' + user("last") + seq("s", "last"))])
    started = client.start("compat", "clerk")
    client.complete(client.task(started, "last"), "cashier")
    assert instance(client, started)["status"] == "completed"


def test_the_instance_ends_when_its_last_token_ends(client: ApiClient) -> None:
    """Two branches, one ending without an end event: the instance runs on until both
    have ended, whichever ends first."""
    deployed_quietly(client, [bpmn(
        '<bpmn:startEvent id="s"/><bpmn:parallelGateway id="fork"/>'
        + user("open_end") + user("drawn_end") + '<bpmn:endEvent id="e"/>'
        + seq("s", "fork") + seq("fork", "open_end") + seq("fork", "drawn_end")
        + seq("drawn_end", "e")
    )])  # fmt: skip
    for first, second in (("open_end", "drawn_end"), ("drawn_end", "open_end")):
        started = client.start("compat", "clerk")
        client.complete(client.task(started, first), "cashier")
        assert instance(client, started)["status"] == "running"
        assert client.open_elements(started) == [second]
        client.complete(client.task(started, second), "cashier")
        assert instance(client, started)["status"] == "completed"


def test_a_subprocess_path_without_an_end_event_goes_on_after_the_subprocess(
    client: ApiClient,
) -> None:
    deployed_quietly(client, [bpmn(
        '<bpmn:startEvent id="s"/><bpmn:subProcess id="sub"><bpmn:startEvent id="ss"/>'
        + user("inside") + seq("ss", "inside") + "</bpmn:subProcess>"
        + user("after") + '<bpmn:endEvent id="e"/>'
        + seq("s", "sub") + seq("sub", "after") + seq("after", "e")
    )])  # fmt: skip
    started = client.start("compat", "clerk")
    client.complete(client.task(started, "inside"), "cashier")
    assert client.open_elements(started) == ["after"]
    client.complete(client.task(started, "after"), "cashier")
    assert instance(client, started)["status"] == "completed"


def link(kind: str, element_id: str, name: str) -> str:
    return f'<bpmn:{kind} id="{element_id}"><bpmn:linkEventDefinition name="{name}"/></bpmn:{kind}>'


def test_a_link_goes_on_at_the_catch_of_its_name(client: ApiClient) -> None:
    """Two throws to one catch, in a subprocess too: each goes on where its link lands."""
    deployed_quietly(client, [bpmn(
        '<bpmn:startEvent id="s"/><bpmn:exclusiveGateway id="g" default="g_to_to_b"/>'
        + link("intermediateThrowEvent", "to_a", "A") + link("intermediateThrowEvent", "to_b", "B")
        + link("intermediateCatchEvent", "at_a", "A") + link("intermediateCatchEvent", "at_b", "B")
        + user("a") + '<bpmn:subProcess id="sub"><bpmn:startEvent id="ss"/>'
        + link("intermediateThrowEvent", "jump", "A") + link("intermediateCatchEvent", "land", "A")
        + user("b") + '<bpmn:endEvent id="se"/>'
        + seq("ss", "jump") + seq("land", "b") + seq("b", "se") + "</bpmn:subProcess>"
        + '<bpmn:endEvent id="e"/>'
        + seq("s", "g") + seq("g", "to_a", "go == 'a'") + seq("g", "to_b")
        + seq("at_a", "a") + seq("a", "e") + seq("at_b", "sub") + seq("sub", "e")
        # as Camunda Modeler writes them: artifacts after the flow elements
        + '<bpmn:textAnnotation id="note"><bpmn:text>links</bpmn:text></bpmn:textAnnotation>'
        + '<bpmn:association id="about" sourceRef="to_a" targetRef="note"/>'
    )])  # fmt: skip
    to_a = client.start("compat", "clerk", variables={"go": "a"})
    assert client.open_elements(to_a) == ["a"]
    to_b = client.start("compat", "clerk", variables={"go": "b"})
    assert client.open_elements(to_b) == ["b"]  # through the subprocess's own link A
    client.complete(client.task(to_b, "b"), "cashier")
    assert instance(client, to_b)["status"] == "completed"


def test_a_link_without_its_catch_is_refused_naming_it(client: ApiClient) -> None:
    files = [bpmn(
        '<bpmn:startEvent id="s"/>' + link("intermediateThrowEvent", "to_x", "X")
        + '<bpmn:subProcess id="sub"><bpmn:startEvent id="ss"/>'
        + link("intermediateCatchEvent", "x_inside", "X") + '<bpmn:endEvent id="se"/>'
        + seq("ss", "se") + seq("x_inside", "se") + "</bpmn:subProcess>"
        + seq("s", "to_x")
    )]  # fmt: skip
    errors = refused(client, files)
    assert [(e["element"], e["message"]) for e in errors] == [
        ("to_x", "no link catch event named 'X' in the same process or subprocess")
    ]


SHIPPED = Path(__file__).resolve().parents[2]


def shipped(path: str) -> tuple[str, bytes]:
    return Path(path).name, (SHIPPED / path).read_bytes()


def test_the_shipped_processes_check_and_deploy_one_file_at_a_time(client: ApiClient) -> None:
    """As the web modeler deploys: one file, resolved against what is deployed, a call's
    own calls included (inquiry_to_collection calls order_fulfilment, which calls
    document_review)."""
    client.deploy([shipped(f"forms/{f.name}") for f in sorted((SHIPPED / "forms").glob("*.form"))])
    for dmn in sorted((SHIPPED / "bpmn").glob("*.dmn")):
        client.deploy([shipped(f"bpmn/{dmn.name}")])
    order = ["document_review", "order_fulfilment", "payment_collection", "after_sales",
             "customer_development", "inquiry_to_collection"]  # fmt: skip
    assert sorted(order) == sorted(p.stem for p in (SHIPPED / "bpmn").glob("*.bpmn"))
    for key in order:
        file = [shipped(f"bpmn/{key}.bpmn")]
        checked = client.post(
            f"{V1}/definitions/check", "owner", data=multipart(file),
            content_type="multipart/form-data",
        )  # fmt: skip
        assert checked.status_code == 200, checked.get_data(True)
        body = client.deploy(file)
        assert [(d["key"], d["created"]) for d in body["definitions"]] == [(key, True)]
        assert body["warnings"] == []


@pytest.mark.parametrize(
    ("links", "said"),
    [
        (link("intermediateThrowEvent", "to_x", "") + link("intermediateCatchEvent", "at_x", ""),
         [("at_x", "a link event needs a name (its definition's)"),
          ("to_x", "a link event needs a name (its definition's)")]),
        (link("intermediateThrowEvent", "to_x", "X") + link("intermediateCatchEvent", "at_x", "X")
         + link("intermediateCatchEvent", "at_x2", "X"),
         [("at_x2", "another link catch event is named 'X'")]),
    ],
)  # fmt: skip
def test_links_that_cannot_be_followed_are_refused(
    client: ApiClient, links: str, said: list[tuple[str, str]]
) -> None:
    files = [bpmn('<bpmn:startEvent id="s"/>' + links + user("after") + seq("s", "to_x")
                  + seq("at_x", "after"))]  # fmt: skip
    assert sorted((e["element"], e["message"]) for e in refused(client, files)) == said


def test_a_new_version_of_a_called_process_says_which_callers_keep_the_old_one(
    client: ApiClient,
) -> None:
    passes = (
        '<bpmn:extensionElements><camunda:in variables="all"/><camunda:out variables="all"/>'
        "</bpmn:extensionElements>"
    )
    caller = bpmn(
        '<bpmn:startEvent id="s"/>'
        f'<bpmn:callActivity id="call" calledElement="callee">{passes}</bpmn:callActivity>'
        '<bpmn:endEvent id="e"/>' + seq("s", "call") + seq("call", "e")
    )
    callee = diagram("callee", '<bpmn:startEvent id="s"/>' + user("first") + seq("s", "first"))
    client.deploy([caller, callee])
    renewed = diagram("callee", '<bpmn:startEvent id="s"/>' + user("second") + seq("s", "second"))
    assert client.deploy([renewed])["warnings"] == [
        "process 'compat' calls 'callee' and goes on starting the version that was latest "
        "when it was deployed, not version 2: deploy 'compat' again to call this one"
    ]
    started = client.start("compat", "clerk")
    assert client.open_elements(started) == ["first"]  # as the warning said
    assert client.deploy([caller, renewed], status=201)["warnings"] == []
    assert client.open_elements(client.start("compat", "clerk")) == ["second"]

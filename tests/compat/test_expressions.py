"""What Camunda users write in expressions and cells that doesn't run here yet is refused
at deploy with what to write instead, never left to fail when an instance reaches it."""

from __future__ import annotations

import pytest

from tests.api.conftest import V1, ApiClient, multipart, problem
from tests.compat.test_refused import around, bpmn, dmn, table, user_with
from tests.diagrams import seq


def refused(client: ApiClient, files: list[tuple[str, bytes]]) -> list[dict[str, str]]:
    with client.unchanged():
        response = client.post(
            f"{V1}/definitions", "owner", data=multipart(files), content_type="multipart/form-data"
        )
        return list(problem(response, 422, "diagram-invalid")["errors"])


def gateway(condition: str) -> tuple[str, bytes]:
    return bpmn(
        '<bpmn:startEvent id="s"/><bpmn:exclusiveGateway id="g" default="g_to_b"/>'
        '<bpmn:endEvent id="a"/><bpmn:endEvent id="b"/>'
        + seq("s", "g") + seq("g", "a", condition) + seq("g", "b")
    )  # fmt: skip


@pytest.mark.parametrize(
    ("condition", "said"),
    [
        ("${approved == true}", "true is JUEL"),
        ("${x != null}", "null is JUEL"),
        ("${true}", "true is JUEL"),
        ("${a &amp;&amp; b}", "JUEL's &&"),
        ("${amount gt 1000}", "JUEL's &&, ||, !, eq"),
    ],
)
def test_juel_is_refused_with_what_to_write(client: ApiClient, condition: str, said: str) -> None:
    [error] = refused(client, [gateway(condition)])
    assert error["element"] == "g_to_a" and said in error["message"], error


@pytest.mark.parametrize(
    ("cell", "said"),
    [('"silver","bronze"', "FEEL list"), ('not("A")', "not(...)"), ("true", "true is JUEL")],
)
def test_feel_cells_are_refused_with_what_to_write(client: ApiClient, cell: str, said: str) -> None:
    body = table().replace("<text>&gt;= 700</text>", f"<text>{cell}</text>")
    [error] = refused(client, [dmn(body)])
    assert error["element"] == "r1" and said in error["message"], error


def test_a_candidate_group_that_is_no_role_id_is_refused(client: ApiClient) -> None:
    task = user_with().replace(
        'camunda:candidateGroups="finance"', 'camunda:candidateGroups="Sales"'
    )
    [error] = refused(client, [bpmn(around(task))])
    assert error["element"] == "x"
    assert "'Sales' is not a role id" in error["message"] and "'sales'" in error["message"]


def test_python_style_expressions_still_deploy(client: ApiClient) -> None:
    client.deploy([gateway("${approved == True and amount > 1000}")])

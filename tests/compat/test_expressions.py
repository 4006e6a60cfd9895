"""Expressions as Camunda users write them: JUEL in ``${…}`` runs with JUEL's meaning
(engine/modeling/juel.py), driven through the HTTP API; what can't run here (method
calls, functions, beans) and what doesn't run in cells yet is refused at deploy with what
to write instead, never left to fail when an instance reaches it."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from engine.timers.scheduler import Timers
from tests.api.conftest import V1, ApiClient, multipart, problem
from tests.compat.test_refused import around, bpmn, dmn, table, user_with
from tests.diagrams import seq, timer, user


def refused(client: ApiClient, files: list[tuple[str, bytes]]) -> list[dict[str, str]]:
    with client.unchanged():
        response = client.post(
            f"{V1}/definitions", "owner", data=multipart(files), content_type="multipart/form-data"
        )
        return list(problem(response, 422, "diagram-invalid")["errors"])


def gateway(condition: str) -> tuple[str, bytes]:
    """A gateway to task `yes` when ``condition`` holds, else to task `no`."""
    return bpmn(
        '<bpmn:startEvent id="s"/><bpmn:exclusiveGateway id="g" default="g_to_no"/>'
        + user("yes") + user("no") + '<bpmn:endEvent id="e1"/><bpmn:endEvent id="e2"/>'
        + seq("s", "g") + seq("g", "yes", condition) + seq("g", "no")
        + seq("yes", "e1") + seq("no", "e2")
    )  # fmt: skip


def branch(client: ApiClient, condition: str, **variables: object) -> str:
    client.deploy([gateway(condition)])
    [element] = client.open_elements(client.start("compat", "clerk", variables=variables))
    return element


# Camunda 7 evaluates these with JUEL; each row: the condition, variables, its answer
JUEL = [
    ("${approved == true}", {"approved": True}, True),
    ("${approved == true}", {"approved": False}, False),
    ("${approved}", {"approved": True}, True),
    ("${!approved}", {"approved": True}, False),
    ("${not approved}", {"approved": False}, True),
    ("${x != null}", {"x": None}, False),
    ("${x != null}", {"x": "A"}, True),
    ("${x == null}", {"x": None}, True),
    ("${true}", {}, True),
    ("${false}", {}, False),
    ("${a &amp;&amp; b}", {"a": True, "b": False}, False),
    ("${a || b}", {"a": False, "b": True}, True),
    ("${a and b or c}", {"a": False, "b": True, "c": True}, True),
    ("${amount gt 1000}", {"amount": 1500}, True),
    ("${amount ge 1000 &amp;&amp; amount le 2000}", {"amount": 2000}, True),
    ("${amount lt 1000}", {"amount": 1000}, False),
    ("${grade eq 'A'}", {"grade": "A"}, True),
    ('${grade ne "A"}', {"grade": "A"}, False),
    ("${amount &gt; 1000}", {"amount": 999}, False),
    ("${empty items}", {"items": []}, True),
    ("${empty items}", {"items": None}, True),
    ("${not empty items}", {"items": [1]}, True),
    ("${empty comment}", {"comment": ""}, True),
    ("${!empty comment}", {"comment": "late"}, True),
    ("${(amount > 100 ? 'big' : 'small') == 'big'}", {"amount": 500}, True),
    ("${urgent ? amount > 10 : amount > 1000}", {"urgent": False, "amount": 500}, False),
    ("${order.amount * 2 > 100}", {"order": {"amount": 60}}, True),
    ("${order.discount == null}", {"order": {"amount": 60}}, True),  # no key: null
    ("${order.customer.grade == null}", {"order": {}}, True),  # a null base: null
    ("${items[5] == null}", {"items": [1, 2]}, True),  # past the list: null
    ("${items[1] == 2}", {"items": [1, 2]}, True),
    ("${a || b &amp;&amp; c}", {"a": False, "b": True, "c": False}, False),  # && first
    ("${(a ? b ? 1 : 2 : 3) == 2}", {"a": True, "b": False}, True),
    ("${x == 'it\\'s'}", {"x": "it's"}, True),
    ("${a - b - c == 0}", {"a": 5, "b": 3, "c": 2}, True),  # from the left
    ("${a / b * c == 6}", {"a": 6, "b": 2, "c": 2}, True),
    (f"${{{' &amp;&amp; '.join(['a'] * 120)}}}", {"a": True}, True),  # a long chain
    ("${len(items) > 0}", {"items": [1]}, True),  # Python-style inside ${}, as before
    ("${order['customer'].grade == 'A'}", {"order": {"customer": {"grade": "A"}}}, True),
    ("${amount div 4 == 2.5}", {"amount": 10}, True),
    ("${amount mod 3 == 1}", {"amount": 10}, True),
    ("${!approved == false}", {"approved": True}, True),  # ! binds tighter than ==
    ("#{approved}", {"approved": True}, True),
]


@pytest.mark.parametrize(("condition", "variables", "holds"), JUEL)
def test_juel_conditions_run_as_camunda_evaluates_them(
    client: ApiClient, condition: str, variables: dict[str, object], holds: bool
) -> None:
    assert branch(client, condition, **variables) == ("yes" if holds else "no")


@pytest.mark.parametrize(
    ("condition", "said"),
    [
        ("${order.size() > 0}", "calling a method ('.size(…)') can't run here"),
        ("${order.getAmount()}", "calling a method ('.getAmount(…)')"),
        ("${fn:length(items) > 0}", "calling 'fn' can't run here"),
        ("${dateTime()}", "calling 'dateTime' can't run here"),
        ("${a b}", "unexpected 'b'"),
        ("${}", "the expression is empty"),
        ("${execution.processBusinessKey}", "Camunda's 'execution' isn't available here"),
        ('${authenticatedUserId == "bob"}', "Camunda's 'authenticatedUserId' isn't available"),
        ("${a # b}", "'# b' is not JUEL this engine reads"),
        ("${in > 1}", "'in' can't be a variable name here"),
        ("${" + "a." * 1500 + "b}", "longer than 2000 characters"),
        ("${order.__class__}", "the property '__class__' can't be read here"),
        ("${" + "(" * 400 + "x" + ")" * 400 + "}", "nested more than 50 deep"),
        ("${" + "-" * 1200 + "x}", "nested more than 50 deep"),
    ],
)
def test_juel_that_cannot_run_here_is_refused_naming_the_flow(
    client: ApiClient, condition: str, said: str
) -> None:
    [error] = refused(client, [gateway(condition)])
    assert error["element"] == "g_to_yes" and said in error["message"], error
    assert error["file"] == "compat.bpmn"


@pytest.mark.parametrize(
    ("condition", "said"),
    [
        ("approved == true", "true is JUEL: wrap the expression in ${…}"),
        ("a &amp;&amp; b", "JUEL's &&, ||, !, eq, ne, lt, gt, le, ge and empty are read inside"),
    ],
)
def test_juel_outside_its_braces_is_refused_saying_so(
    client: ApiClient, condition: str, said: str
) -> None:
    [error] = refused(client, [gateway(condition)])
    assert error["element"] == "g_to_yes" and said in error["message"], error


@pytest.mark.parametrize(
    ("where", "kind"),
    [
        ('<bpmn:standardLoopCharacteristics><bpmn:loopCondition>${n &lt; 3}'
         "</bpmn:loopCondition></bpmn:standardLoopCharacteristics>", "loop condition"),
    ],
)  # fmt: skip
def test_juel_where_it_is_not_translated_is_refused(
    client: ApiClient, where: str, kind: str
) -> None:
    task = user("yes").replace("</bpmn:userTask>", where + "</bpmn:userTask>")
    [error] = refused(client, [bpmn(around(task.replace('id="yes"', 'id="x"')))])
    assert error["element"] == "x" and error["message"].startswith(f"{kind} '${{n < 3}}'"), error


def test_juel_in_a_decision_table_is_refused(client: ApiClient) -> None:
    body = table().replace("<text>score</text>", "<text>${score}</text>")
    [error] = refused(client, [dmn(body)])
    assert error["element"] == "i", error
    assert error["message"] == (
        "input expression '${score}' refused: ${…} is JUEL, and this expression is FEEL: "
        'write FEEL (score), or say expressionLanguage="juel"'
    )


def test_juel_timers_and_multi_instance_counts_are_translated(client: ApiClient) -> None:
    """``${…}`` is JUEL wherever an expression stands: a timer and a loop's cardinality."""
    looped = user("yes").replace(
        "</bpmn:userTask>",
        "<bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>${empty reviewers ? 1 "
        ": reviewers}</bpmn:loopCardinality></bpmn:multiInstanceLoopCharacteristics>"
        "</bpmn:userTask>",
    )
    waits = (
        '<bpmn:intermediateCatchEvent id="w">'
        + timer("timeDuration", "${urgent ? &quot;PT1H&quot; : &quot;P2D&quot;}")
        + "</bpmn:intermediateCatchEvent>"
    )
    client.deploy([bpmn(
        '<bpmn:startEvent id="s"/>' + waits + looped + '<bpmn:endEvent id="e"/>'
        + seq("s", "w") + seq("w", "yes") + seq("yes", "e")
    )])  # fmt: skip
    with time_machine.travel(client.clock.now(), tick=False) as spiffs_clock:
        instance = client.start("compat", "clerk", variables={"urgent": True, "reviewers": 3})
        assert client.open_elements(instance) == []
        client.clock.advance(minutes=59)
        spiffs_clock.shift(timedelta(minutes=59))
        assert Timers(client.flow.runtime).fire_due() == []
        client.clock.advance(minutes=2)
        spiffs_clock.shift(timedelta(minutes=2))
        Timers(client.flow.runtime).fire_due()
    assert client.open_elements(instance) == ["yes", "yes", "yes"]


def test_a_candidate_group_that_is_no_role_id_is_refused(client: ApiClient) -> None:
    task = user_with().replace(
        'camunda:candidateGroups="finance"', 'camunda:candidateGroups="Sales"'
    )
    [error] = refused(client, [bpmn(around(task))])
    assert error["element"] == "x"
    assert "'Sales' is not a role id" in error["message"] and "'sales'" in error["message"]


def test_python_style_expressions_still_deploy(client: ApiClient) -> None:
    client.deploy([gateway("${approved == True and amount > 1000}")])

"""Decision tables as DMN and Camunda 7 define them, deployed and decided through the
HTTP API: FEEL cells, every hit policy and aggregation, several decisions per file with
required decisions, literal expressions, and ``camunda:resultVariable`` with each
``mapDecisionResult``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import V1, ApiClient, ok, problem
from tests.compat.test_refused import DMN_HEAD, bpmn
from tests.diagrams import seq, user


def rules(*rows: tuple[tuple[str, ...], tuple[str, ...]]) -> str:
    return "".join(
        f'<rule id="r{n}">'
        + "".join(f"<inputEntry id='r{n}i{k}'><text>{c}</text></inputEntry>"
                  for k, c in enumerate(cells))
        + "".join(f"<outputEntry id='r{n}o{k}'><text>{o}</text></outputEntry>"
                  for k, o in enumerate(outs))
        + "</rule>"
        for n, (cells, outs) in enumerate(rows, 1)
    )  # fmt: skip


def decision(
    body: str, *, inputs: tuple[str, ...] = ("v",), outputs: tuple[str, ...] = ("out",),
    policy: str = "FIRST", decision_id: str = "pick", extra: str = "", requires: str = "",
    output_values: str = "",
) -> str:  # fmt: skip
    columns = "".join(
        f'<input id="in{k}"><inputExpression id="ie{k}"><text>{expression}</text>'
        "</inputExpression></input>"
        for k, expression in enumerate(inputs)
    )
    listed = f"<outputValues><text>{output_values}</text></outputValues>" if output_values else ""
    answers = "".join(f'<output id="out{k}" name="{name}">{listed}</output>'
                      for k, name in enumerate(outputs))  # fmt: skip
    needs = f'<informationRequirement id="need_{requires}"><requiredDecision href="#{requires}"/>' \
        "</informationRequirement>" if requires else ""  # fmt: skip
    return (
        f'<decision id="{decision_id}" name="{decision_id}">{needs}'
        f'<decisionTable id="{decision_id}_t" hitPolicy="{policy}" {extra}>'
        f"{columns}{answers}{body}</decisionTable></decision>"
    )


def dmn(*decisions: str) -> tuple[str, bytes]:
    return "pick.dmn", (DMN_HEAD + "".join(decisions) + "</definitions>").encode()


def deciding(decision_id: str = "pick", attributes: str = "") -> tuple[str, bytes]:
    """Decide at `rate`, then wait at `after`."""
    return bpmn(
        '<bpmn:startEvent id="s"/>'
        f'<bpmn:businessRuleTask id="rate" camunda:decisionRef="{decision_id}" {attributes}/>'
        + user("after") + '<bpmn:endEvent id="e"/>'
        + seq("s", "rate") + seq("rate", "after") + seq("after", "e")
    )  # fmt: skip


def decide(client: ApiClient, **variables: Any) -> dict[str, Any]:
    """The instance's variables once it decided (its own start variables taken out)."""
    instance = client.start("compat", "clerk", variables=variables)
    body = ok(client.get(f"{V1}/instances/{instance}", "admin"))
    return {k: v for k, v in body["variables"].items() if k not in variables}


def failed(client: ApiClient, **variables: Any) -> str:
    """The refusal of a start whose decision fails."""
    response = client.post(
        f"{V1}/instances", "clerk", json={"definition": "compat", "variables": variables}
    )
    return str(problem(response, 422)["detail"])


# -- FEEL in the cells --------------------------------------------------------------------
FEEL_CELLS = [
    # cell, values that match, values that don't
    ('"silver","bronze"', ["silver", "bronze"], ["gold", None, 1]),
    ('not("gold")', ["silver", None], ["gold"]),
    ('not("a","b")', ["c"], ["a", "b"]),
    ("[1..10]", [1, 5, 10, 7.5], [0, 11, None, "5"]),
    ("(1..10)", [2, 9.9], [1, 10]),
    ("]1..10[", [5], [1, 10]),
    ("[1..10)", [1], [10]),
    ("&lt; 5", [4, -1], [5, None, "4"]),
    ("&gt;= limit", [7, 8], [6]),
    ("= 5", [5], [6]),
    ("!= 5", [6, None], [5]),
    ("-", [1, None, "x"], []),
    ("", [1, None], []),
    ("true", [True], [False, None, "true", 1]),
    ("1", [1, 1.0], [True, "1"]),
    ("= [1, 2]", [[1, 2], 1], [[2, 1], 3]),
    ("false", [False], [True, None]),
    ("null", [None], [0, "", False]),
    ("-3.5", [-3.5], [3.5]),
    ('"Why?"', ["Why?"], ["Why"]),
    ("limit", [7], [6]),
    ("? &gt; 2 and ? &lt; 4", [3], [2, 4]),
    ('date("2024-05-01")', ["2024-05-01"], ["2024-05-02"]),
    ('&gt;= date("2024-05-01")', ["2024-05-01", "2024-12-31"], ["2024-04-30", None]),
    ("&lt;= limit + 1", [8], [9]),
    ('"a","b",&gt; "x"', ["a", "y"], ["c"]),
    # the Python-style cells of the older tables read as before
    ('in ["A", "B"]', ["A"], ["C"]),
    ("1 &lt; ? &lt; 5", [2], [5]),
    ("&gt;= 1000", [1000], [999]),
]


@pytest.mark.parametrize(("cell", "hits", "misses"), FEEL_CELLS, ids=[c for c, *_ in FEEL_CELLS])
def test_a_feel_input_cell_tests_the_input_as_camunda_does(
    client: ApiClient, cell: str, hits: list[Any], misses: list[Any]
) -> None:
    table = decision(rules(((cell,), ('"hit"',)), (("-",), ('"miss"',))))
    client.deploy([dmn(table), deciding()])
    for value in hits:
        assert decide(client, v=value, limit=7) == {"out": "hit"}, value
    for value in misses:
        assert decide(client, v=value, limit=7) == {"out": "miss"}, value


def test_a_cell_naming_a_list_tests_membership_and_python_functions_still_read(
    client: ApiClient,
) -> None:
    """DMN 1.3: a unary test whose expression is a list matches any of its items; a cell
    calling a function the evaluator has reads Python-style, as tables did before."""
    table = decision(rules((("allowed",), ('"listed"',)), (("len(allowed) &gt; 5",), ('"long"',)),
                           (("-",), ('"other"',))))  # fmt: skip
    client.deploy([dmn(table), deciding()])
    assert decide(client, v="DE", allowed=["DE", "FR"]) == {"out": "listed"}
    assert decide(client, v="US", allowed=["DE", "FR"]) == {"out": "other"}
    assert decide(client, v=True, allowed=[1, 2, 3, 4, 5, 6]) == {"out": "long"}


@pytest.mark.parametrize(
    ("expression", "variables", "expected"),
    [
        ('"A"', {}, "A"),
        ("amount * 0.1", {"amount": 200}, 20.0),
        ('if vip then "gold" else "plain"', {"vip": True}, "gold"),
        ('if vip then "gold" else "plain"', {"vip": None}, "plain"),
        ("customer.grade", {"customer": {"grade": "B"}}, "B"),
        ("customer.grade", {"customer": None}, None),
        ("x between 1 and 5", {"x": 3}, True),
        ("not(x)", {"x": False}, True),
        ("[1, 2, 3]", {}, [1, 2, 3]),
        ('"line\\none"', {}, "line\none"),
        ('"\\uD83D\\uDE00 \\u4E0A\\u6D77"', {}, "\U0001f600 上海"),
        ("null", {}, None),
        ("-(2 ** 3)", {}, -8),
        ("a = b", {"a": 1, "b": 1}, True),
        ("", {}, None),
    ],
)
def test_a_feel_output_cell_answers_its_value(
    client: ApiClient, expression: str, variables: dict[str, Any], expected: Any
) -> None:
    client.deploy([dmn(decision(rules((("-",), (expression,))))), deciding()])
    assert decide(client, v=0, **variables) == {"out": expected}


def test_an_input_expression_is_feel_or_the_language_it_names(client: ApiClient) -> None:
    table = decision(
        rules((("&gt; 100",), ('"big"',)), (("-",), ('"small"',))),
        inputs=("order.amount * 2",),
    )
    client.deploy([dmn(table), deciding()])
    assert decide(client, order={"amount": 60}) == {"out": "big"}
    juel = table.replace(
        '<inputExpression id="ie0">', '<inputExpression id="ie0" expressionLanguage="juel">'
    ).replace("order.amount * 2", "${order.amount gt 40 ? 200 : 0}")
    client.deploy([dmn(juel)])
    assert decide(client, order={"amount": 60}) == {"out": "big"}
    assert decide(client, order={"amount": 10}) == {"out": "small"}


@pytest.mark.parametrize(
    ("cell", "said"),
    [
        ("string length(v) &gt; 3", "the FEEL function 'string length()' doesn't run here"),
        ("count(v)", "the FEEL function 'count()' doesn't run here"),
        ("{a: 1}", "FEEL contexts ({...}) don't run here"),
        ("v[1]", "FEEL filters and indexes (a[...]) don't run here"),
        ("some x in v satisfies x &gt; 1", "FEEL's 'some' quantifier don't run here"),
        ("first name", "names with spaces don't run here"),
        ('date("2024-13-01")', 'date("2024-13-01") is not an ISO 8601 value'),
        ("[1..", "input cell '[1..' refused"),
        ('"A", max(v, 1)', "the FEEL function 'max()' doesn't run here"),
        ("sum([v]) &gt; 0 and v != null", "the FEEL function 'sum()' doesn't run here"),
    ],
)
def test_feel_that_cannot_run_here_is_refused_naming_the_rule(
    client: ApiClient, cell: str, said: str
) -> None:
    table = decision(rules(((cell,), ('"hit"',))))
    with client.unchanged():
        response = client.post(f"{V1}/definitions", "owner", data=_files(dmn(table)),
                               content_type="multipart/form-data")  # fmt: skip
        [error] = problem(response, 422, "diagram-invalid")["errors"]
    assert (error["file"], error["element"]) == ("pick.dmn", "r1"), error
    assert said in error["message"], error


def _files(*files: tuple[str, bytes]) -> Any:
    from tests.api.conftest import multipart

    return multipart(list(files))


# -- hit policies -------------------------------------------------------------------------
OVERLAPPING = rules(
    (("&gt;= 10",), ('"high"',)), (("&gt;= 5",), ('"medium"',)), (("&gt;= 0",), ('"low"',)),
)  # fmt: skip


def test_unique_answers_its_one_rule_and_fails_naming_the_rules_that_overlap(
    client: ApiClient,
) -> None:
    client.deploy([dmn(decision(OVERLAPPING, policy="UNIQUE")), deciding()])
    assert decide(client, v=-1) == {}  # no rule: no output
    detail = failed(client, v=7)
    assert "decision 'pick': rules 2, 3 all match, and hit policy UNIQUE allows one" in detail
    with client.unchanged():
        assert "rules 1, 2, 3 all match" in failed(client, v=12)


def test_first_any_priority_and_the_orders(client: ApiClient) -> None:
    client.deploy([dmn(decision(OVERLAPPING, policy="FIRST")), deciding()])
    assert decide(client, v=7) == {"out": "medium"}
    ordered = '"low","medium","high"'  # listed values: the first is the highest priority
    client.deploy([dmn(decision(OVERLAPPING, policy="PRIORITY", output_values=ordered))])
    assert decide(client, v=12) == {"out": "low"}
    assert decide(client, v=7) == {"out": "low"}
    client.deploy([dmn(decision(OVERLAPPING, policy="OUTPUT ORDER", output_values=ordered))])
    assert decide(client, v=12) == {"out": ["low", "medium", "high"]}
    client.deploy([dmn(decision(OVERLAPPING, policy="RULE ORDER"))])
    assert decide(client, v=12) == {"out": ["high", "medium", "low"]}
    assert decide(client, v=3) == {"out": ["low"]}  # a list, however many rules match
    agreeing = rules((("&gt;= 5",), ('"yes"',)), (("&gt;= 0",), ('"yes"',)))
    client.deploy([dmn(decision(agreeing, policy="ANY"))])
    assert decide(client, v=7) == {"out": "yes"}
    client.deploy([dmn(decision(OVERLAPPING, policy="ANY"))])
    assert "rules 2, 3 match with different outputs, and hit policy ANY" in failed(client, v=7)


@pytest.mark.parametrize(
    ("aggregation", "many", "none"),
    [("SUM", 17, None), ("MIN", 2, None), ("MAX", 10, None), ("COUNT", 3, 0),
     (None, [10, 5, 2], [])],
)  # fmt: skip
def test_collect_lists_or_aggregates(
    client: ApiClient, aggregation: str | None, many: Any, none: Any
) -> None:
    table = rules((("&gt;= 10",), ("10",)), (("&gt;= 5",), ("5",)), (("&gt;= 0",), ("2",)))
    extra = f'aggregation="{aggregation}"' if aggregation else ""
    client.deploy([dmn(decision(table, policy="COLLECT", extra=extra)), deciding()])
    assert decide(client, v=12) == {"out": many}
    assert decide(client, v=-1) == ({"out": none} if none is not None else {})


@pytest.mark.parametrize(
    ("table", "said"),
    [
        (decision(OVERLAPPING, policy="PRIORITY"),
         "hit policy PRIORITY orders by the output's values"),
        (decision(rules((("-",), ("1", "2"))), policy="COLLECT", extra='aggregation="SUM"',
                  outputs=("a", "b")), "COLLECT SUM needs exactly one output"),
        (decision(OVERLAPPING, policy="FIRST", extra='aggregation="SUM"'),
         "aggregation 'SUM' goes with COLLECT"),
        (decision(OVERLAPPING, policy="SOMETIMES"), "hit policy 'SOMETIMES' is not one of"),
        (decision(OVERLAPPING, outputs=("two words",)), "an output needs a name"),
    ],
)  # fmt: skip
def test_a_table_its_hit_policy_cannot_run_is_refused(
    client: ApiClient, table: str, said: str
) -> None:
    with client.unchanged():
        response = client.post(f"{V1}/definitions", "owner", data=_files(dmn(table)),
                               content_type="multipart/form-data")  # fmt: skip
        errors = problem(response, 422, "diagram-invalid")["errors"]
    assert any(said in e["message"] and e["file"] == "pick.dmn" for e in errors), errors


# -- decisions that require decisions; literal expressions ---------------------------------
def test_a_decision_reads_what_its_required_decisions_answer(client: ApiClient) -> None:
    """A DRD in one file: `offer` requires `grade` (a table) and `discount` (a literal
    expression, which itself requires `grade`); each is deployed in versions of its own."""
    grade = decision(rules((("&gt;= 700",), ('"A"',)), (("-",), ('"C"',))),
                     inputs=("score",), outputs=("grade",), decision_id="grade")  # fmt: skip
    discount = (
        '<decision id="discount" name="discount"><informationRequirement id="n1">'
        '<requiredDecision href="#grade"/></informationRequirement>'
        '<variable id="dv" name="discount"/><literalExpression id="le">'
        '<text>if grade = "A" then 0.1 else 0</text></literalExpression></decision>'
    )
    offer = decision(
        rules((('"A"',), ("amount * (1 - discount)",)), (("-",), ("amount",))),
        inputs=("grade",), outputs=("price",), decision_id="offer", requires="grade",
    ).replace('<decisionTable', '<informationRequirement id="n2"><requiredDecision '
              'href="#discount"/></informationRequirement><decisionTable', 1)  # fmt: skip
    body = client.deploy([dmn(grade, discount, offer), deciding("offer")])
    assert sorted((d["key"], d["version"]) for d in body["decisions"]) == [
        ("discount", 1), ("grade", 1), ("offer", 1),
    ]  # fmt: skip
    assert decide(client, score=720, amount=1000) == {"price": 900.0}
    assert decide(client, score=600, amount=1000) == {"price": 1000}
    client.deploy([deciding("discount")])
    assert decide(client, score=720) == {"discount": 0.1}


def test_required_decisions_must_be_there_and_lead_nowhere_back(client: ApiClient) -> None:
    a = decision(rules((("-",), ("1",))), decision_id="a", requires="b")
    b = decision(rules((("-",), ("1",))), decision_id="b", requires="a")
    lonely = decision(rules((("-",), ("1",))), decision_id="c", requires="nowhere")
    with client.unchanged():
        response = client.post(f"{V1}/definitions", "owner", data=_files(dmn(a, b, lonely)),
                               content_type="multipart/form-data")  # fmt: skip
        errors = problem(response, 422, "diagram-invalid")["errors"]
    said = {(e["element"], e["message"]) for e in errors}
    assert ("c", "requires decision 'nowhere', which is not in this file") in said
    assert ("a", "its required decisions lead back to it") in said
    assert ("b", "its required decisions lead back to it") in said


# -- the result variable --------------------------------------------------------------------
TWO_OUTPUTS = rules(
    (("&gt;= 10",), ('"high"', "3")), (("&gt;= 5",), ('"medium"', "2")),
)  # fmt: skip


@pytest.mark.parametrize(
    ("mapping", "v", "expected"),
    [
        ("resultList", 12, [{"level": "high", "rank": 3}, {"level": "medium", "rank": 2}]),
        ("resultList", 0, []),
        ("singleResult", 7, {"level": "medium", "rank": 2}),
        ("singleResult", 0, None),
    ],
)
def test_the_result_variable_holds_the_results_as_mapped(
    client: ApiClient, mapping: str, v: int, expected: Any
) -> None:
    table = decision(TWO_OUTPUTS, policy="RULE ORDER", outputs=("level", "rank"))
    attributes = f'camunda:resultVariable="result" camunda:mapDecisionResult="{mapping}"'
    client.deploy([dmn(table), deciding(attributes=attributes)])
    assert decide(client, v=v) == {"result": expected}


def test_single_entry_and_collect_entries_take_one_output(client: ApiClient) -> None:
    one = decision(rules((("&gt;= 10",), ('"high"',)), (("&gt;= 5",), ('"medium"',))),
                   policy="RULE ORDER", outputs=("level",))  # fmt: skip
    collect = 'camunda:resultVariable="levels" camunda:mapDecisionResult="collectEntries"'
    client.deploy([dmn(one), deciding(attributes=collect)])
    assert decide(client, v=12) == {"levels": ["high", "medium"]}
    single = 'camunda:resultVariable="level" camunda:mapDecisionResult="singleEntry"'
    client.deploy([deciding(attributes=single)])
    assert decide(client, v=7) == {"level": "medium"}
    assert decide(client, v=0) == {"level": None}
    with client.unchanged():
        assert "mapDecisionResult singleEntry: 2 results, where it takes one at most" in failed(
            client, v=12
        )
    client.deploy([dmn(decision(TWO_OUTPUTS, policy="RULE ORDER", outputs=("level", "rank"))),
                   deciding(attributes=collect)])  # fmt: skip
    assert "mapDecisionResult collectEntries needs results of exactly one output" in failed(
        client, v=7
    )


@pytest.mark.parametrize(
    ("wrong", "said"),
    [
        ('camunda:resultVariable="r" camunda:mapDecisionResult="firstOne"',
         "camunda:mapDecisionResult 'firstOne' is not one of resultList"),
        ('camunda:resultVariable="the result"',
         "camunda:resultVariable 'the result' must be a variable's name"),
    ],
)  # fmt: skip
def test_a_mapping_camunda_does_not_know_is_refused(
    client: ApiClient, wrong: str, said: str
) -> None:
    table = decision(rules((("-",), ('"x"',))))
    with client.unchanged():
        response = client.post(
            f"{V1}/definitions", "owner", data=_files(dmn(table), deciding(attributes=wrong)),
            content_type="multipart/form-data",
        )  # fmt: skip
        [error] = problem(response, 422, "diagram-invalid")["errors"]
    assert error["element"] == "rate"
    assert said in error["message"], error


def test_a_literal_expression_answers_a_variable_with_a_name(client: ApiClient) -> None:
    literal = (
        '<decision id="pick" name="pick"><variable id="v" name="two words"/>'
        '<literalExpression id="le"><text>1</text></literalExpression></decision>'
    )
    with client.unchanged():
        response = client.post(f"{V1}/definitions", "owner", data=_files(dmn(literal)),
                               content_type="multipart/form-data")  # fmt: skip
        [error] = problem(response, 422, "diagram-invalid")["errors"]
    assert error["element"] == "pick"
    assert "the variable 'two words' must be a name of letters, digits and _" in error["message"]

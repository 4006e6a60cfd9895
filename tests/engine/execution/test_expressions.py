"""The restricted evaluator: what diagrams may compute, and what they may not."""

from __future__ import annotations

import gc
import time
from types import SimpleNamespace
from typing import Any

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.parser import BpmnParser
from SpiffWorkflow.dmn.engine.DMNEngine import DMNEngine
from SpiffWorkflow.util.task import TaskState

from engine.errors import BudgetExceeded, ExpressionRefused
from engine.execution import Limits, check_expression, check_script, evaluate_expression
from engine.execution.expressions import MAX_EXPRESSION_LENGTH, SafeScriptEngine, run_script
from engine.execution.limits import Budget, enter, leave

DATA: dict[str, Any] = {
    "amount": 25_000,
    "grade": "A",
    "x": "abc",
    "order": {"lines": [{"sku": "P-1", "qty": 3}, {"sku": "P-2", "qty": 5}]},
    "big": list(range(20_000)),
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('amount > 10000 and grade == "A"', True),
        ('amount > 30000 or grade != "A"', False),
        ('x in ["a", "b"]', False),
        ('grade in ("A", "B")', True),
        ('order["lines"][1]["qty"] * 2', 10),
        ('[line["sku"] for line in order["lines"] if line["qty"] > 3]', ["P-2"]),
        ('{line["sku"]: line["qty"] for line in order["lines"]}', {"P-1": 3, "P-2": 5}),
        ('sum([line["qty"] for line in order["lines"]])', 8),
        ("x[::-1]", "cba"),
        ('f"{grade}-{amount}"', "A-25000"),
        ("len(big) > 0 and max(1, 2) == 2 and abs(-3) == 3", True),
        ("round(1.2345, 2)", 1.23),
        ('int("7") + float("0.5")', 7.5),
        ("sorted([3, 1, 2], reverse=True)", [3, 2, 1]),
        ("any([False, True]) and all([True])", True),
        ('dict(a=1) == {"a": 1} and list("ab") == ["a", "b"]', True),
        ('str(12) + "!"', "12!"),
        ("bool(0) is False and None is None", True),
        ('"big" if amount >= 10000 else "small"', "big"),
        ("2 ** 10", 1024),
    ],
)
def test_allowed_expressions_evaluate(text: str, expected: Any) -> None:
    assert evaluate_expression(text, DATA) == expected


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('id')",
        "().__class__.__base__.__subclasses__()",
        "x.upper()",
        "x.y",
        "lambda: 1",
        "(lambda: 1)()",
        "[x for x in range(10**9)]",
        "[i for i in big]",  # more iterations than a comprehension may take
        "[[0] * 10000] * 10000",  # small to write, 10**8 items to walk
        '[[0] * 10000 for line in order["lines"] * 5000]',
        "str([big] * 100)",
        "9**9**9",
        "2 ** 4000000",
        "'a' * 10**9",
        "'%999999999d' % 1",
        'f"{x:>999999999}"',
        "round(5, -10**7)",
        "sum([[1]], [])",
        "1+" * 2500 + "1",
        "-" * 500 + "1",
        "open('/etc/passwd')",
        "(y := 1)",
        "__builtins__",
        "getattr(x, 'y')",
        "eval('1')",
        "exec('1')",
        "dict(**order)",
        "{c for c in x}",
        "[*x]",
        "x(1)",
        ">= 1000",
    ],
)
def test_forbidden_expressions_are_refused(text: str) -> None:
    with pytest.raises(ExpressionRefused):
        evaluate_expression(text, DATA)


def test_refusal_names_the_construct() -> None:
    with pytest.raises(ExpressionRefused, match="attribute access"):
        check_expression("x.upper()")
    with pytest.raises(ExpressionRefused, match="'open' is not allowed"):
        check_expression("open('/etc/passwd')")
    with pytest.raises(ExpressionRefused, match=str(MAX_EXPRESSION_LENGTH)):
        check_expression("1+" * 2500 + "1")


def test_check_expression_needs_no_data() -> None:
    check_expression('amount > 10000 and grade == "A"')
    check_expression("undefined_name > 1")  # names are only looked up when run
    with pytest.raises(ExpressionRefused, match="not a valid expression"):
        check_expression("amount >")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("missing > 1", NameError),
        ("len", NameError),  # functions are callable, not values to store in task data
        ("1 / 0", ZeroDivisionError),
        ("'a' + 1", TypeError),
        ('order["nope"]', KeyError),
    ],
)
def test_runtime_errors_are_ordinary_exceptions(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        evaluate_expression(text, DATA)


def test_get_reads_a_variable_that_may_be_absent() -> None:
    assert evaluate_expression('get("missing", 30)', DATA) == 30
    assert evaluate_expression('get("missing")', DATA) is None
    assert evaluate_expression('"P" + str(get("days", 30)) + "D"', {"days": 14}) == "P14D"
    # the evaluator is shared per thread: get() reads this evaluation's names, not the last's
    assert evaluate_expression('get("days", 0)', {}) == 0
    data: dict[str, Any] = {"days": 3}
    run_script('total = get("days", 0) * 2', data)
    assert data["total"] == 6
    with pytest.raises(TypeError):
        evaluate_expression("get(1)", DATA)
    with pytest.raises(NameError):
        evaluate_expression("get", DATA)  # callable, not a value


def test_surrounding_whitespace_is_ignored() -> None:
    assert evaluate_expression("\n   amount > 1\n  ", DATA) is True


def test_script_assigns_in_order() -> None:
    data: dict[str, Any] = {"qty": 3, "price": 10}
    run_script("total = qty * price\ntotal += 1\npass\ntotal -= 2\nlabel = str(total)", data)
    assert data["total"] == 29
    assert data["label"] == "29"


def test_script_context_is_read_not_written() -> None:
    data: dict[str, Any] = {}
    run_script("doubled = rate * 2", data, {"rate": 4})
    assert data == {"doubled": 8}


def test_failed_script_leaves_data_untouched() -> None:
    data: dict[str, Any] = {"qty": 3}
    with pytest.raises(NameError) as failure:
        run_script("qty = 5\nb = missing", data)
    assert data == {"qty": 3}
    assert "script line 2" in failure.value.__notes__


@pytest.mark.parametrize(
    "bad_line",
    [
        "import os",
        "from os import system",
        "def f(): pass",
        "x.y = 1",
        "x['y'] = 1",
        "a = b = 1",
        "for i in y: pass",
        "while True: pass",
        'exec("import os")',
        "total //= 2",
        "__builtins__ = 1",
        "total = __import__('os')",
        "total = x.upper()",
        "total =",
    ],
)
def test_forbidden_scripts_are_refused_with_line(bad_line: str) -> None:
    with pytest.raises(ExpressionRefused, match="line 2"):
        check_script(f"total = 1\n{bad_line}\nother = 2")


def test_script_statements_share_one_size_budget() -> None:
    # each line alone is fine; together they build more than a script may
    with pytest.raises(ExpressionRefused, match="too much data"):
        run_script("\n".join(f"b{i} = [0] * 10000" for i in range(200)), {})


def test_runtime_refusal_in_script_names_line() -> None:
    with pytest.raises(ExpressionRefused, match="line 2") as refused:
        run_script("a = 1\nb = 'a' * 10**9", {})
    assert refused.value.details["line"] == 2


def task(**data: Any) -> Any:
    """Stands in for a Spiff task on the paths that only read ``task.data``."""
    return SimpleNamespace(data=data)


def test_engine_evaluate_merges_external_context() -> None:
    engine = SafeScriptEngine()
    assert engine.evaluate(task(amount=5), "amount > 3") is True
    assert engine.evaluate(task(v=1), "v", external_context={"v": 2}) == 2


def test_engine_lets_refusals_through_unwrapped() -> None:
    engine = SafeScriptEngine()
    with pytest.raises(ExpressionRefused):
        engine.evaluate(task(), "__import__('os')")
    with pytest.raises(ExpressionRefused):
        engine.execute(task(), "import os")
    with pytest.raises(ExpressionRefused):
        engine.call_service(task(), operation_name="x")


def test_environment_is_safe_too() -> None:
    # Spiff calls script_engine.environment.evaluate directly for some conditions
    environment = SafeScriptEngine().environment
    assert environment.evaluate("a + b", {"a": 1}, {"b": 2}) == 3
    with pytest.raises(ExpressionRefused):
        environment.evaluate("__import__('os')", {})


def test_engine_execute_writes_task_data() -> None:
    t = task(qty=2, price=7)
    assert SafeScriptEngine().execute(t, "total = qty * price") is True
    assert t.data["total"] == 14


def test_validate_tells_dmn_cells_apart() -> None:
    engine = SafeScriptEngine()
    with pytest.raises(SyntaxError):
        engine.validate(">= 1000")
    engine.validate("dmninputexpr >= 1000")
    with pytest.raises(ExpressionRefused):
        engine.validate("x.y >= 1000")


@pytest.mark.parametrize(
    ("cell", "matches"),
    [(">= 1000", True), ("< 1000", False), ("25000", True), ('"A"', False), ("? > 10", True)],
)
def test_dmn_cells_through_spiffs_dmn_engine(cell: str, matches: bool) -> None:
    dmn_task = SimpleNamespace(
        data={"amount": 25_000}, workflow=SimpleNamespace(script_engine=SafeScriptEngine())
    )
    assert DMNEngine(None).evaluate("amount", cell, dmn_task) is matches


BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="defs" targetNamespace="t">
  <bpmn:process id="order" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="price"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>{script}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:exclusiveGateway id="gw" default="small_flow">
      <bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>big_flow</bpmn:outgoing><bpmn:outgoing>small_flow</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:endEvent id="big"><bpmn:incoming>big_flow</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="small"><bpmn:incoming>small_flow</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="price"/>
    <bpmn:sequenceFlow id="f2" sourceRef="price" targetRef="gw"/>
    <bpmn:sequenceFlow id="big_flow" sourceRef="gw" targetRef="big">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{condition}
      </bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="small_flow" sourceRef="gw" targetRef="small"/>
  </bpmn:process>
</bpmn:definitions>
"""


def run_workflow(qty: int, script: str = "total = qty * 500", condition: str = "total > 9") -> Any:
    parser = BpmnParser()
    parser.add_bpmn_str(BPMN.format(script=script, condition=condition).encode())
    workflow = BpmnWorkflow(parser.get_spec("order"), script_engine=SafeScriptEngine())
    workflow.get_next_task(state=TaskState.READY).data["qty"] = qty
    workflow.do_engine_steps()
    return workflow


@pytest.mark.parametrize(("qty", "end"), [(3, "big"), (0, "small")])
def test_real_workflow_runs_script_and_condition(qty: int, end: str) -> None:
    workflow = run_workflow(qty)
    assert workflow.is_completed()
    assert workflow.get_next_task(spec_name=end, state=TaskState.COMPLETED) is not None


def test_real_workflow_wraps_runtime_errors_with_line() -> None:
    with pytest.raises(WorkflowTaskException) as failure:
        run_workflow(3, script="a = 1\ntotal = qty / 0")
    assert failure.value.line_number == 2
    assert failure.value.error_line == "total = qty / 0"
    with pytest.raises(WorkflowTaskException, match="Error evaluating expression"):
        run_workflow(3, condition="totl > 1000")


def test_real_workflow_refuses_unsafe_condition() -> None:
    with pytest.raises(ExpressionRefused):
        run_workflow(3, condition="__import__('os').system('id')")


# --- the command's budget (engine/execution/limits.py) ---------------------------------------


def within(limits: Limits) -> Any:
    """Evaluate as a command with ``limits`` would."""
    return _Entered(Budget(limits))


class _Entered:
    def __init__(self, budget: Budget) -> None:
        self.budget = budget

    def __enter__(self) -> Budget:
        self.token = enter(self.budget)
        return self.budget

    def __exit__(self, *exc: object) -> None:
        leave(self.token)


def test_one_long_expression_is_stopped_by_the_commands_clock() -> None:
    """Ten thousand sums of twenty thousand numbers: well within every size limit, some
    seconds of work. The evaluator looks at the clock as it goes, not only at the end.
    (The collector is held off while it runs: a full collection of a test worker's heap
    can take a second of this thread's time, which is not the evaluator's.)"""
    gc.collect()
    gc.disable()
    try:
        began = time.thread_time()
        with within(Limits(max_seconds=0.05)), pytest.raises(BudgetExceeded) as caught:
            evaluate_expression("[sum(big) for y in big[:10000]]", DATA)
        assert time.thread_time() - began < 0.5
    finally:
        gc.enable()
    assert caught.value.details["budget"] == "seconds"


@pytest.mark.parametrize("text", ["big[:]", "big[::1]", "big[1:]", "x[:] + 'y'"])
def test_slices_are_charged_before_they_are_made(text: str) -> None:
    with within(Limits()) as budget:
        evaluate_expression(text, DATA)
    spent = Limits().max_built - budget.built_left
    assert spent >= (3 if text.startswith("x") else 19_999)


def test_a_script_copying_a_list_again_and_again_runs_out() -> None:
    script = "\n".join(f"c{n} = big[:]" for n in range(60))  # 1.2 million items kept
    with pytest.raises(ExpressionRefused, match="builds too much data"):
        run_script(script, dict(DATA))


def test_what_expressions_build_adds_up_over_the_command() -> None:
    with within(Limits(max_built=50_000)), pytest.raises(BudgetExceeded) as caught:
        for _ in range(3):  # three evaluations of 20,000 items each
            evaluate_expression("big[:]", DATA)
    assert caught.value.details["budget"] == "built"


def test_a_spent_budget_stays_spent() -> None:
    """Whatever swallowed the error (Spiff wraps what a task raises), every later
    evaluation in the command raises it again."""
    with within(Limits(max_built=10)) as budget:
        with pytest.raises(BudgetExceeded):
            evaluate_expression("big[:]", DATA)
        with pytest.raises(BudgetExceeded) as again:
            evaluate_expression("amount > 1", DATA)
        assert again.value is budget.exceeded

"""Deploy-time refusal of what would run for ever without waiting (engine/modeling/runaway.py),
and of timer cycles faster than the minimum interval (engine/modeling/lint.py).

Each refusal names the file and the element and says what to draw instead; each diagram
that only looks alike (a wait state on every way round, a loop that can end) deploys.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.errors import Problem, ProcessFailed
from engine.execution import Limits
from engine.modeling import runaway
from engine.storage import Instance
from engine.tradeflow import Tradeflow
from tests import diagrams
from tests.engine.modeling.test_lint import _definitions, bpmn, refuse

USER = '<bpmn:userTask id="ask" camunda:candidateGroups="finance" />'
CALL = '<bpmn:callActivity id="again" calledElement="{pid}" />'
SCRIPT = (
    '<bpmn:scriptTask id="step"><bpmn:script>n = get("n", 0) + 1</bpmn:script></bpmn:scriptTask>'
)


def call(pid: str, element: str = "again") -> str:
    return f'<bpmn:callActivity id="{element}" calledElement="{pid}" />'


def deploys(flow: Tradeflow, *files: tuple[str, bytes]) -> None:
    flow.deploy(list(files), actor="owner")


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


# --- processes that call themselves ----------------------------------------------------------


def test_a_process_that_calls_itself_at_once(flow: Tradeflow) -> None:
    problem = only(refuse(flow, [("probe.bpmn", bpmn(SCRIPT, call("probe")))]))
    assert (problem.file, problem.element) == ("probe.bpmn", "again")
    assert "probe → probe" in problem.message
    assert "user task" in problem.message  # what to draw instead


def test_two_processes_that_call_each_other_at_once(flow: Tradeflow) -> None:
    ping = ("ping.bpmn", bpmn(call("pong", "to_pong"), pid="ping"))
    pong = ("pong.bpmn", bpmn(call("ping", "to_ping"), pid="pong"))
    problems = refuse(flow, [ping, pong])
    assert {(p.file, p.element) for p in problems} == {
        ("ping.bpmn", "to_pong"),
        ("pong.bpmn", "to_ping"),
    }
    assert any("ping → pong → ping" in p.message for p in problems)


def test_a_cycle_closed_through_a_deployed_process(flow: Tradeflow) -> None:
    """pong v1 calls nothing; ping calls it; pong v2 would call ping back at once."""
    deploys(flow, ("pong.bpmn", bpmn(SCRIPT, pid="pong")))
    deploys(flow, ("ping.bpmn", bpmn(call("pong", "to_pong"), pid="ping")))
    problem = only(refuse(flow, [("pong.bpmn", bpmn(call("ping", "to_ping"), pid="pong"))]))
    assert (problem.file, problem.element) == ("pong.bpmn", "to_ping")
    assert "pong → ping → pong" in problem.message


def test_a_self_call_after_a_wait_state_deploys_and_waits(flow: Tradeflow) -> None:
    """Each round waits for a person: a recursion that runs as drawn."""
    deploys(flow, ("probe.bpmn", bpmn(USER, call("probe"))))
    iid = flow.start("probe", actor="owner")
    [task] = flow.tasks_of(iid)
    flow.complete(task.id, actor="cashier")
    assert [t.element_id for t in flow.tasks_of(iid) if t.state.value == "open"] == ["ask"]


def test_a_wait_on_only_one_way_to_the_call_is_not_enough(flow: Tradeflow) -> None:
    nodes = (
        '<bpmn:exclusiveGateway id="choose" />'
        + USER
        + '<bpmn:exclusiveGateway id="join" />'
        + call("probe")
    )
    content = _definitions(
        '<bpmn:process id="probe" isExecutable="true"><bpmn:startEvent id="start" />'
        + nodes
        + '<bpmn:endEvent id="end" />'
        '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="choose" />'
        '<bpmn:sequenceFlow id="f2" sourceRef="choose" targetRef="ask">'
        '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">ask_first'
        "</bpmn:conditionExpression></bpmn:sequenceFlow>"
        '<bpmn:sequenceFlow id="f3" sourceRef="choose" targetRef="join">'
        '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">not ask_first'
        "</bpmn:conditionExpression></bpmn:sequenceFlow>"
        '<bpmn:sequenceFlow id="f4" sourceRef="ask" targetRef="join" />'
        '<bpmn:sequenceFlow id="f5" sourceRef="join" targetRef="again" />'
        '<bpmn:sequenceFlow id="f6" sourceRef="again" targetRef="end" />'
        "</bpmn:process>"
    )
    assert only(refuse(flow, [("probe.bpmn", content)])).element == "again"


def test_a_wait_inside_a_subprocess_on_the_way_counts(flow: Tradeflow) -> None:
    inner = (
        '<bpmn:subProcess id="inner"><bpmn:startEvent id="in_start" />'
        '<bpmn:userTask id="in_ask" camunda:candidateGroups="finance" />'
        '<bpmn:endEvent id="in_end" />'
        '<bpmn:sequenceFlow id="i1" sourceRef="in_start" targetRef="in_ask" />'
        '<bpmn:sequenceFlow id="i2" sourceRef="in_ask" targetRef="in_end" />'
        "</bpmn:subProcess>"
    )
    deploys(flow, ("probe.bpmn", bpmn(inner, call("probe"))))
    without_wait = inner.replace(
        '<bpmn:userTask id="in_ask" camunda:candidateGroups="finance" />', SCRIPT
    ).replace('"in_ask"', '"step"')
    assert only(refuse(flow, [("probe.bpmn", bpmn(without_wait, call("probe")))])).element == (
        "again"
    )


def test_a_call_on_the_way_that_waits_counts_as_a_wait(flow: Tradeflow) -> None:
    """probe calls ask_someone (which waits for a person), then itself."""
    deploys(
        flow,
        ("asking.bpmn", bpmn(USER, pid="ask_someone")),
        ("probe.bpmn", bpmn(call("ask_someone", "first"), call("probe"))),
    )
    quick = ("asking.bpmn", bpmn(SCRIPT, pid="ask_someone"))  # asks no one any more
    problems = refuse(
        flow, [quick, ("probe.bpmn", bpmn(call("ask_someone", "first"), call("probe")))]
    )
    assert only(problems).element == "again"


def test_a_timer_boundary_on_the_way_is_a_wait_an_error_boundary_is_not(flow: Tradeflow) -> None:
    """A boundary event on a script task leads to a self-call: a timer's waits (and here
    never fires), an error's goes on as soon as the script fails."""

    def boundary(definition: str) -> bytes:
        return bpmn(SCRIPT).replace(
            b"</bpmn:process>",
            (
                f'<bpmn:boundaryEvent id="b" attachedToRef="step">{definition}</bpmn:boundaryEvent>'
                + call("probe")
                + '<bpmn:sequenceFlow id="fb" sourceRef="b" targetRef="again" />'
                '<bpmn:endEvent id="again_end" />'
                '<bpmn:sequenceFlow id="fa" sourceRef="again" targetRef="again_end" />'
                "</bpmn:process>"
            ).encode(),
        )

    timer = (
        "<bpmn:timerEventDefinition><bpmn:timeDuration>PT1H</bpmn:timeDuration>"
        "</bpmn:timerEventDefinition>"
    )
    deploys(flow, ("probe.bpmn", boundary(timer)))
    error = "<bpmn:errorEventDefinition />"
    assert only(refuse(flow, [("probe.bpmn", boundary(error))])).element == "again"


# --- standard loops --------------------------------------------------------------------------


def loop(condition: str | None, maximum: str | None = None, task: str = "scriptTask") -> bytes:
    attributes = f' loopMaximum="{maximum}"' if maximum else ""
    inner = f"<bpmn:loopCondition>{condition}</bpmn:loopCondition>" if condition else ""
    body = '<bpmn:script>n = get("n", 0) + 1</bpmn:script>' if task == "scriptTask" else ""
    extra = ' camunda:candidateGroups="finance"' if task == "userTask" else ""
    return bpmn(
        f'<bpmn:{task} id="repeat"{extra}><bpmn:standardLoopCharacteristics{attributes}>'
        f"{inner}</bpmn:standardLoopCharacteristics>{body}</bpmn:{task}>"
    )


@pytest.mark.parametrize("condition", ["True", "1", "1 == 1", "not False", "(True)"])
@pytest.mark.parametrize("task", ["scriptTask", "userTask"])
def test_a_standard_loop_that_is_always_true_is_refused(
    flow: Tradeflow, condition: str, task: str
) -> None:
    problem = only(refuse(flow, [("probe.bpmn", loop(condition, task=task))]))
    assert (problem.file, problem.element) == ("probe.bpmn", "repeat")
    assert "always true" in problem.message and "loopMaximum" in problem.message


def test_standard_loops_that_can_end_deploy_and_run_as_drawn(flow: Tradeflow) -> None:
    deploys(flow, ("probe.bpmn", loop('get("n", 0) &lt; 3')))
    assert flow.variables(flow.start("probe", actor="owner"))["n"] == 3
    deploys(flow, ("probe.bpmn", loop("True", maximum="4")))
    assert flow.variables(flow.start("probe", actor="owner"))["n"] == 4


def test_a_loop_condition_is_checked_like_any_expression(flow: Tradeflow) -> None:
    problem = only(refuse(flow, [("probe.bpmn", loop("__import__('os')"))]))
    assert problem.element == "repeat" and "loop condition" in problem.message


# --- timer cycles ----------------------------------------------------------------------------


def timer_cycle(value: str, where: str = "boundary") -> bytes:
    definition = (
        f"<bpmn:timerEventDefinition><bpmn:timeCycle>{value}</bpmn:timeCycle>"
        "</bpmn:timerEventDefinition>"
    )
    if where == "catch":
        return bpmn(
            f'<bpmn:intermediateCatchEvent id="tick">{definition}</bpmn:intermediateCatchEvent>'
        )
    return bpmn(USER).replace(
        b"</bpmn:process>",
        (
            f'<bpmn:boundaryEvent id="tick" attachedToRef="ask" cancelActivity="false">'
            f'{definition}</bpmn:boundaryEvent><bpmn:endEvent id="e2" />'
            '<bpmn:sequenceFlow id="fb" sourceRef="tick" targetRef="e2" /></bpmn:process>'
        ).encode(),
    )


@pytest.mark.parametrize(
    "value", ["R/PT0.001S", "R5/PT59S", '"R/PT1S"', "R/2026-12-01T00:00:00Z/PT10S", "R/PT0S"]
)
@pytest.mark.parametrize("where", ["boundary", "catch"])
def test_a_timer_cycle_below_the_minimum_interval_is_refused(
    flow: Tradeflow, value: str, where: str
) -> None:
    problem = only(refuse(flow, [("probe.bpmn", timer_cycle(value, where))]))
    assert (problem.file, problem.element) == ("probe.bpmn", "tick")
    assert "minimum interval of 60 s" in problem.message
    assert "TRADEFLOW_MIN_TIMER_INTERVAL" in problem.message


@pytest.mark.parametrize("value", ["R/PT1M", "R3/PT1H", "R/P1D", "R/P1M"])
def test_cycles_of_a_minute_or_more_deploy(flow: Tradeflow, value: str) -> None:
    deploys(flow, ("probe.bpmn", timer_cycle(value)))


def test_the_minimum_interval_is_configured(
    flow: Tradeflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEFLOW_MIN_TIMER_INTERVAL", "PT2H")
    flow.runtime.limits = Limits.from_env()  # read when the runtime is made
    problem = only(refuse(flow, [("probe.bpmn", timer_cycle("R3/PT1H"))]))
    assert "minimum interval of 7200 s" in problem.message
    monkeypatch.setenv("TRADEFLOW_MIN_TIMER_INTERVAL", "1")
    flow.runtime.limits = Limits.from_env()
    deploys(flow, ("probe.bpmn", timer_cycle("R/PT1S")))


# --- loops drawn with sequence flows ---------------------------------------------------------


_loop, _flow = diagrams.diagram, diagrams.seq


def _timer(kind: str, value: str, element: str = "pause", boundary_of: str = "") -> str:
    if boundary_of:
        return (
            f'<bpmn:boundaryEvent id="{element}" attachedToRef="{boundary_of}">'
            f"{diagrams.timer(kind, value)}</bpmn:boundaryEvent>"
        )
    return (
        f'<bpmn:intermediateCatchEvent id="{element}">{diagrams.timer(kind, value)}'
        "</bpmn:intermediateCatchEvent>"
    )


WAIT_AN_HOUR = _timer("timeDuration", "&quot;PT1H&quot;")


@pytest.mark.parametrize(
    ("pid", "body", "first"),
    [
        (  # a task sent straight back to itself
            "again",
            '<bpmn:startEvent id="start" />' + USER + _flow("start", "ask") + _flow("ask", "ask"),
            "ask",
        ),
        (  # round a wait, joined by a parallel gateway (which plans ahead too)
            "joined",
            '<bpmn:startEvent id="start" /><bpmn:parallelGateway id="join" />'
            + SCRIPT
            + WAIT_AN_HOUR
            + _flow("start", "join")
            + _flow("join", "step")
            + _flow("step", "pause")
            + _flow("pause", "join"),
            "join",
        ),
    ],
)
def test_a_loop_that_passes_no_deciding_gateway_is_refused(
    flow: Tradeflow, pid: str, body: str, first: str
) -> None:
    problem = only(refuse(flow, [_loop(pid, body)]))
    assert (problem.file, problem.element) == (f"{pid}.bpmn", first)
    assert "passes no exclusive, inclusive or event-based gateway" in problem.message
    assert "through an exclusive gateway" in problem.message  # what to draw instead


def test_the_same_loop_through_an_exclusive_gateway_runs(flow: Tradeflow) -> None:
    body = (
        '<bpmn:startEvent id="start" /><bpmn:exclusiveGateway id="merge" />'
        + SCRIPT
        + WAIT_AN_HOUR
        + _flow("start", "merge")
        + _flow("merge", "step")
        + _flow("step", "pause")
        + _flow("pause", "merge")
    )
    deploys(flow, _loop("rounds", body))
    iid = flow.start("rounds", actor="cashier")
    assert flow.variables(iid)["n"] == 1  # and it waits an hour for the next round


@pytest.mark.parametrize(
    ("timer", "said"),
    [
        (_timer("timeDuration", "&quot;PT0.001S&quot;"), "waits PT0.001S, less than the minimum"),
        (_timer("timeDate", "&quot;2026-12-01T09:00:00&quot;"), "waits for a fixed date"),
    ],
)
def test_a_timer_on_a_loop_that_would_flood_is_refused(
    flow: Tradeflow, timer: str, said: str
) -> None:
    body = (
        '<bpmn:startEvent id="start" /><bpmn:exclusiveGateway id="merge" />'
        + SCRIPT
        + timer
        + _flow("start", "merge")
        + _flow("merge", "step")
        + _flow("step", "pause")
        + _flow("pause", "merge")
    )
    problem = only(refuse(flow, [_loop("flood", body)]))
    assert (problem.element, said in problem.message) == ("pause", True), problem


def test_a_boundary_timer_of_a_task_on_a_loop_is_on_the_loop(flow: Tradeflow) -> None:
    body = (
        '<bpmn:startEvent id="start" /><bpmn:exclusiveGateway id="merge" />'
        + USER
        + _timer("timeDuration", "&quot;PT1S&quot;", "nudge", boundary_of="ask")
        + '<bpmn:endEvent id="end" />'
        + _flow("start", "merge")
        + _flow("merge", "ask")
        + _flow("ask", "end")
        + _flow("nudge", "merge")
    )
    problem = only(refuse(flow, [_loop("nudging", body)]))
    assert problem.element == "nudge" and "less than the minimum" in problem.message
    # the same wait once, off any loop, runs as drawn
    once = body.replace(_flow("nudge", "merge"), _flow("nudge", "end"))
    deploys(flow, _loop("nudging", once))


def test_such_a_loop_deployed_before_the_check_fails_its_start_with_a_reason(
    flow: Tradeflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A definition stored before deploy refused such loops (the check switched off
    here, as it was then): a start is refused with why, not a RecursionError's 500."""
    monkeypatch.setattr(runaway, "flow_loops", lambda *_: [])
    body = '<bpmn:startEvent id="start" />' + USER + _flow("start", "ask") + _flow("ask", "ask")
    deploys(flow, _loop("again", body))
    with pytest.raises(ProcessFailed, match="passes no exclusive, inclusive or event-based"):
        flow.start("again", actor="cashier")
    with flow.db.reading() as session:  # nothing was stored: the start was one unit
        assert session.scalars(select(Instance.id)).all() == []

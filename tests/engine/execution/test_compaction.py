"""Long-lived loops: every kind of element the engine runs, in a loop, for rounds past
SpiffWorkflow's task-tree depth of 1000 (engine/execution/compaction.py).

Each loop runs three times side by side on one database and one clock:

* ``live``: the engine as served (finished tasks compacted away, live workflows cached);
* ``saved``: the same, every command restoring its workflow from the saved state;
* ``spiff``: Spiff's own tree (compaction off, live workflows cached).

For its first rounds the three must agree round by round: the timers that fired, the
open tasks, the variables and the audit trail's events. The two compacted runs go on
past the depth where Spiff's tree stops the instance, and must go on agreeing and
repeating the pattern of the first rounds; the state stays the same size; and the
``spiff`` run, kept going, must fail loudly, not stop without a word.

The loops pass a chain of none events each round (milestones the engine runs by
itself), so their trees grow past depth 1000 in a few dozen rounds."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from sqlalchemy import select

from engine.audit import instance_stream
from engine.errors import ProcessFailed
from engine.execution import elements
from engine.execution.serialization import thaw
from engine.people import Flags
from engine.queues import InboxQuery
from engine.runtime import LiveWorkflows
from engine.storage import AuditEvent, Database, InstanceStatus
from engine.tradeflow import Tradeflow
from tests.conftest import FakeClock
from tests.diagrams import diagram, message, messages, seq, timer, user


def loop(pid: str, middle: str, entry: str, exit_: str, pad: int = 25, outside: str = "") -> Any:
    """start → merge → ``pad`` none events → ``entry`` … ``exit_`` → another round while
    ``more``, else the end."""
    steps = ["merge", *(f"mark_{i}" for i in range(pad)), entry]
    marks = "".join(f'<bpmn:intermediateThrowEvent id="mark_{i}" />' for i in range(pad))
    body = (
        '<bpmn:startEvent id="start" /><bpmn:exclusiveGateway id="merge" />'
        f'{marks}{middle}<bpmn:exclusiveGateway id="again" /><bpmn:endEvent id="end" />'
        + seq("start", "merge")
        + "".join(seq(a, b) for a, b in itertools.pairwise(steps))
        + seq(exit_, "again")
        + seq("again", "merge", "more")
        + seq("again", "end", "not more")
    )
    return diagram(pid, body, outside)


REWORK = diagram(  # the smallest rework loop: prepare, review, sent back
    "rework",
    '<bpmn:startEvent id="start" />'
    + user("prepare")
    + user("review")
    + '<bpmn:exclusiveGateway id="approved" /><bpmn:endEvent id="end" />'
    + seq("start", "prepare")
    + seq("prepare", "review")
    + seq("review", "approved")
    + seq("approved", "prepare", "not ok")
    + seq("approved", "end", "ok"),
)
PARALLEL = loop(
    "parallel",
    '<bpmn:parallelGateway id="fork" />'
    + user("pack")
    + user("invoice")
    + '<bpmn:parallelGateway id="join" />'
    + seq("fork", "pack")
    + seq("fork", "invoice")
    + seq("pack", "join")
    + seq("invoice", "join"),
    "fork",
    "join",
)
INCLUSIVE = loop(
    "inclusive",
    user("plan")
    + '<bpmn:inclusiveGateway id="fork" />'
    + user("pack")
    + user("insure")
    + '<bpmn:inclusiveGateway id="join" />'
    + seq("plan", "fork")
    + seq("fork", "pack", "True")
    + seq("fork", "insure", "insured")
    + seq("pack", "join")
    + seq("insure", "join"),
    "plan",
    "join",
)
EVENT_BASED = loop(
    "event_based",
    '<bpmn:eventBasedGateway id="wait" />'
    f'<bpmn:intermediateCatchEvent id="lapsed">{timer("timeDuration", "PT1H")}'
    "</bpmn:intermediateCatchEvent>"
    f'<bpmn:intermediateCatchEvent id="answered">{message("answer", "reply")}'
    "</bpmn:intermediateCatchEvent>"
    + user("handle")
    + '<bpmn:exclusiveGateway id="joined" />'
    + seq("wait", "lapsed")
    + seq("wait", "answered")
    + seq("answered", "handle")
    + seq("handle", "joined")
    + seq("lapsed", "joined"),
    "wait",
    "joined",
    outside=messages("answer"),
)
BOUNDARY = loop(  # a time limit that takes the work away, and a nudge that doesn't
    "boundary",
    user("work")
    + f'<bpmn:boundaryEvent id="too_late" attachedToRef="work">{timer("timeDuration", "PT1H")}'
    "</bpmn:boundaryEvent>"
    f'<bpmn:boundaryEvent id="nudge" attachedToRef="work" cancelActivity="false">'
    f"{message('nudge', 'n, nudged_in_round, note_0, note_1, note_2, note_3')}</bpmn:boundaryEvent>"
    '<bpmn:intermediateThrowEvent id="nudged" /><bpmn:endEvent id="nudge_end" />'
    '<bpmn:exclusiveGateway id="joined" />'
    + seq("work", "joined")
    + seq("too_late", "joined")
    + seq("nudge", "nudged")
    + seq("nudged", "nudge_end"),
    "work",
    "joined",
    outside=messages("nudge"),
)
CYCLE = loop(  # an hourly reminder while the work is open
    "cycle",
    user("watch") + f'<bpmn:boundaryEvent id="remind" attachedToRef="watch" cancelActivity="false">'
    f"{timer('timeCycle', 'R/PT1H')}</bpmn:boundaryEvent>"
    '<bpmn:intermediateThrowEvent id="reminded" /><bpmn:endEvent id="remind_end" />'
    + seq("remind", "reminded")
    + seq("reminded", "remind_end"),
    "watch",
    "watch",
    pad=200,
)
SUBPROCESS = loop(  # a subprocess each round, with a loop of its own inside
    "subprocess",
    '<bpmn:subProcess id="checks"><bpmn:startEvent id="checks_start" />'
    '<bpmn:exclusiveGateway id="checks_merge" />'
    + user("check")
    + '<bpmn:exclusiveGateway id="checked" /><bpmn:endEvent id="checks_end" />'
    + seq("checks_start", "checks_merge")
    + seq("checks_merge", "check")
    + seq("check", "checked")
    + seq("checked", "checks_merge", "not done")
    + seq("checked", "checks_end", "done")
    + "</bpmn:subProcess>",
    "checks",
    "checks",
)
CALLED = diagram(
    "checklist",
    '<bpmn:startEvent id="list_start" />'
    + user("tick")
    + '<bpmn:endEvent id="list_end" />'
    + seq("list_start", "tick")
    + seq("tick", "list_end"),
)
CALL = loop(
    "calling",
    '<bpmn:callActivity id="run_checklist" calledElement="checklist" />',
    "run_checklist",
    "run_checklist",
)
MULTI = loop(  # three approvals side by side, then two signatures one after the other
    "multi",
    user(
        "approve",
        "<bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>3</bpmn:loopCardinality>"
        "</bpmn:multiInstanceLoopCharacteristics>",
    )
    + user(
        "sign",
        '<bpmn:multiInstanceLoopCharacteristics isSequential="true">'
        "<bpmn:loopCardinality>2</bpmn:loopCardinality></bpmn:multiInstanceLoopCharacteristics>",
    )
    + seq("approve", "sign"),
    "approve",
    "sign",
)
MESSAGE = loop(
    "messaged",
    f'<bpmn:intermediateCatchEvent id="pinged">{message("ping", "seq")}'
    "</bpmn:intermediateCatchEvent>" + user("handle") + seq("pinged", "handle"),
    "pinged",
    "handle",
    outside=messages("ping"),
)
DIAGRAMS = [REWORK, PARALLEL, INCLUSIVE, EVENT_BASED, BOUNDARY, CYCLE, SUBPROCESS, CALLED]
DIAGRAMS += [CALL, MULTI, MESSAGE]

MORE = {"more": True}


@dataclass
class Run:
    """One instance of the loop, on a Tradeflow of its own."""

    name: str
    flow: Tradeflow
    iid: int = 0
    key: str = ""
    read: int = 0  # audit events already reported
    traces: dict[int, Any] = field(default_factory=dict)  # by round
    sizes: list[int] = field(default_factory=list)

    def open_tasks(self) -> list[Any]:
        query = InboxQuery(instance_id=self.iid, sort="created", limit=500, count=False)
        return self.flow.inbox("cashier", query).tasks

    def open(self) -> list[str]:
        return sorted(t.element_id for t in self.open_tasks())

    def do(self, element: str, **data: Any) -> None:
        """Complete the first open task at ``element``."""
        found = [t for t in self.open_tasks() if t.element_id == element]
        assert found, f"{self.name}: no open {element}; open: {self.open()}"
        self.flow.complete(found[0].id, actor="cashier", data=data)

    def send(self, name: str, **variables: Any) -> None:
        self.flow.correlate(name, actor="bank", business_key=self.key, variables=variables)

    def trace(self, fired: list[str]) -> Any:
        """What the round did: timers fired, open tasks, variables, audit events."""
        with self.flow.db.reading() as session:
            rows = session.execute(
                select(AuditEvent.seq, AuditEvent.kind, AuditEvent.element_id)
                .where(AuditEvent.stream == instance_stream(self.iid), AuditEvent.seq > self.read)
                .order_by(AuditEvent.seq)
            ).all()
        events = [(kind, element) for _, kind, element in rows]
        self.read = rows[-1][0] if rows else self.read
        instance = self.flow.instance(self.iid)
        self.sizes.append(len(instance.state))
        variables = self.flow.variables(self.iid)
        return (fired, self.open(), variables, events, instance.status)


class Loops:
    """The three runs of one loop, round by round, on one clock."""

    def __init__(self, db: Database, clock: FakeClock, traveller: Any) -> None:
        self.clock, self.traveller = clock, traveller
        live = Tradeflow(db, clock)
        live.deploy(DIAGRAMS, actor="owner")
        live.add_user("cashier", ["finance"])
        live.add_user("bank", [], Flags(integration=True))
        saved, spiff = Tradeflow(db, clock), Tradeflow(db, clock)
        saved.runtime.live = LiveWorkflows(size=0)
        spiff.runtime.compact_trees = False
        self.runs = [Run("live", live), Run("saved", saved), Run("spiff", spiff)]

    def start(self, key: str, **variables: Any) -> None:
        for run in self.runs:
            run.key = f"{key}-{run.name}"
            run.iid = run.flow.start(
                key, actor="cashier", business_key=run.key, variables=variables
            )
            run.read = run.flow.instance(run.iid).audit_seq

    def play(
        self,
        rounds: int,
        act: Callable[[Run, int], None],
        *,
        compare: int,
        period: int = 1,
        hours: Callable[[int], float] = lambda r: 0,
        spiff_fails: bool = False,
        every: int = 1,
    ) -> None:
        """``rounds`` rounds: before each, the clock moves ``hours(r)`` and each run wakes
        up; then ``act`` plays the round on each run. The three agree for ``compare``
        rounds; the compacted two go on and agree with each other and with the rounds a
        ``period`` before (compared ``every`` so many rounds, and the last); Spiff's tree,
        kept going (``spiff_fails``), fails loudly before the end (on SQLite: the
        failure is the engine's, the same on either store, and slow to reach)."""
        spiff = self.runs[2]
        spiff_fails = spiff_fails and not spiff.flow.db.is_postgres
        failed: ProcessFailed | None = None
        for r in range(rounds):
            if hours(r):
                self.clock.advance(hours=hours(r))
                self.traveller.shift(timedelta(hours=hours(r)))
            traced = r < compare or r % every == 0 or r == rounds - 1
            for run in self.runs:
                if run is spiff and (failed is not None or (r >= compare and not spiff_fails)):
                    continue
                if traced and r >= compare:  # the events of this round only
                    run.read = run.flow.instance(run.iid).audit_seq
                try:
                    fired = run.flow.wake(run.iid) if hours(r) else []
                    act(run, r)
                except ProcessFailed as exc:
                    assert run is spiff and r >= compare, f"{run.name}, round {r}: {exc}"
                    failed = exc
                    continue
                if traced:
                    run.traces[r] = run.trace(fired)
            live = self.runs[0].traces.get(r)
            if live is None:
                continue
            assert live == self.runs[1].traces[r], f"round {r}: live and saved differ"
            if r < compare:
                assert live == spiff.traces[r], f"round {r}: compacted and Spiff's differ"
            else:  # as the last round traced in the same place of the pattern
                before = max(q for q in self.runs[0].traces if q < r and (r - q) % period == 0)
                assert live == self.runs[0].traces[before], f"round {r} broke the pattern"
        if spiff_fails:
            assert failed is not None, "Spiff's own tree should have failed loudly by now"
            assert "deeper than SpiffWorkflow's limit" in failed.message or (
                "too deep for the engine" in failed.message
            ), failed.message
        sizes = self.runs[1].sizes  # the state's size stays what it was in the second period
        assert max(sizes[-period:]) <= 1.1 * max(sizes[period : 2 * period])


@pytest.fixture
def loops(db: Database, clock: FakeClock) -> Iterator[Loops]:
    with time_machine.travel(clock.now(), tick=False) as traveller:
        yield Loops(db, clock, traveller)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # 520 commands; the store's part
def test_a_rework_loop_goes_on_past_the_depth_spiff_stops_at(loops: Loops) -> None:  # is above
    loops.start("rework")

    def act(run: Run, r: int) -> None:
        run.do("prepare")
        run.do("review", ok=False)

    # four levels a round: Spiff's tree stops the instance in round 250
    loops.play(260, act, compare=20, every=20)


def test_a_parallel_join_in_a_loop(loops: Loops) -> None:
    loops.start("parallel")

    def act(run: Run, r: int) -> None:
        run.do("pack", **MORE)
        run.do("invoice", **MORE)

    loops.play(36, act, compare=12, every=4)


def test_a_parallel_join_in_a_loop_waits_for_both_whichever_ends_first(loops: Loops) -> None:
    """Spiff's own tree counts an earlier round's cancelled join as an arrival: when the
    branches finish in another order than before, its join goes on with one branch
    still open. Compacted, the earlier rounds are gone, and the join waits."""
    loops.start("parallel")
    live = loops.runs[0]
    for r in range(6):
        first, second = ("pack", "invoice") if r % 2 == 0 else ("invoice", "pack")
        live.do(first, **MORE)
        assert live.open() == [second], f"round {r}: the join went on without {second}"
        live.do(second, **MORE)
        assert live.open() == ["invoice", "pack"]


def test_an_inclusive_join_in_a_loop(loops: Loops) -> None:
    """Spiff's own tree gets only the first round right: from the second, its join goes
    on when the first of two branches arrives (it stops looking at the first round's
    join). Compacted, the join waits for what was started, round after round."""
    loops.start("inclusive")

    def act(run: Run, r: int) -> None:
        insured = r % 2 == 0
        run.do("plan", insured=insured, **MORE)
        assert run.open() == (["insure", "pack"] if insured else ["pack"])
        run.do("pack")
        if insured:
            assert run.open() == ["insure"], f"{run.name}, round {r}: the join went on"
            run.do("insure")
        assert run.open() == ["plan"]

    loops.play(36, act, compare=2, period=2, every=4)


def test_an_event_based_gateway_in_a_loop(loops: Loops) -> None:
    loops.start("event_based", **MORE)

    def act(run: Run, r: int) -> None:
        if r % 2:  # an answer comes before the hour is up
            run.send("answer", reply="yes")
            run.do("handle", **MORE)

    loops.play(36, act, compare=12, period=2, every=4, hours=lambda r: 0 if r % 2 else 1.02)


def test_boundary_events_in_a_loop(loops: Loops) -> None:
    loops.start("boundary", **MORE)

    def act(run: Run, r: int) -> None:
        if r % 3 == 0:
            run.do("work", **MORE)
        elif r % 3 == 2:  # nudged, then done
            run.send("nudge", nudged_in_round=2)
            run.do("work", **MORE)
        # r % 3 == 1: the hour ran out and took the work away

    loops.play(36, act, compare=9, period=3, every=3, hours=lambda r: 1.02 if r % 3 == 1 else 0)


def test_a_timer_cycle_in_a_loop(loops: Loops) -> None:
    loops.start("cycle", **MORE)

    def act(run: Run, r: int) -> None:
        if r % 8 == 7:
            run.do("watch", **MORE)

    loops.play(48, act, compare=16, period=8, every=2, hours=lambda r: 1.02 if r % 8 < 7 else 0)


def test_a_subprocess_in_a_loop(loops: Loops) -> None:
    loops.start("subprocess")

    def act(run: Run, r: int) -> None:
        run.do("check", done=False)
        run.do("check", done=True, **MORE)

    loops.play(36, act, compare=12, every=4)


def test_a_call_activity_in_a_loop(loops: Loops) -> None:
    loops.start("calling")

    def act(run: Run, r: int) -> None:
        run.do("tick", **MORE)

    loops.play(36, act, compare=12, every=4)


def test_multi_instance_tasks_in_a_loop(loops: Loops) -> None:
    loops.start("multi")

    def act(run: Run, r: int) -> None:
        for _ in range(3):
            run.do("approve", approved=True)
        run.do("sign", signed=1)
        run.do("sign", signed=2, **MORE)

    loops.play(36, act, compare=12, every=4)


def test_a_message_catch_in_a_loop(loops: Loops) -> None:
    loops.start("messaged")

    def act(run: Run, r: int) -> None:
        if r % 2 == 0:  # two pings: the second waits for the next round
            run.send("ping", seq=1)
            run.send("ping", seq=2)
        run.do("handle", **MORE)

    loops.play(40, act, compare=12, period=2, every=4, spiff_fails=True)


def test_a_side_path_s_variables_reach_the_result(loops: Loops) -> None:
    """Paths that ended while the loop went on (each nudge's) are merged into the
    process's result when it ends, compacted as in Spiff's own tree."""
    loops.start("boundary", **MORE)
    for run in loops.runs:
        for r in range(4):
            run.send("nudge", **{f"note_{r}": r})
            run.do("work", **MORE)
        run.do("work", more=False)
        assert run.flow.instance(run.iid).status == InstanceStatus.COMPLETED
    results = [run.flow.variables(run.iid) for run in loops.runs]
    assert {"note_0", "note_1", "note_2", "note_3"} <= results[2].keys()
    assert results[0] == results[1] == results[2]
    finals = [
        next(e for e in run.flow.history(run.iid) if e.kind == "instance_completed").data
        for run in loops.runs
    ]
    assert finals[0] == finals[1] == finals[2]


def test_the_saved_state_is_what_a_fresh_save_writes(loops: Loops) -> None:
    """Compaction changes finished tasks' parents and children; the JSON kept for them
    (engine/execution/serialization.py) must be made anew, and a reload must write the same."""
    loops.start("boundary", **MORE)
    live = loops.runs[0]
    runtime = live.flow.runtime
    for r in range(12):
        if r % 3 == 1:
            live.send("nudge", n=r)
        with runtime.command(live.iid, "cashier") as work:
            pass  # a command that changes nothing still settles and saves
        state, workflow = work.instance.state, work.workflow
        for process in (workflow, *workflow.subprocesses.values()):
            for task in process.tasks.values():
                thaw(task)
        # as the unit saves it: large variables apart (none here)
        assert runtime.serializer.dumps(workflow, {}) == state, f"round {r}: a kept JSON is stale"
        with live.flow.db.reading() as session:
            instance = live.flow.instance(live.iid)
            assert runtime.serializer.dumps(runtime.load(session, instance), {}) == state
        live.do("work", **MORE)


def test_the_instance_page_s_markers_keep_what_compaction_dropped(loops: Loops) -> None:
    loops.start("rework")
    for run in loops.runs[::2]:
        for _ in range(3):
            run.do("prepare")
            run.do("review", ok=False)
    live, spiff = loops.runs[0], loops.runs[2]
    with live.flow.db.reading() as session:
        compacted = live.flow.runtime.load(session, live.flow.instance(live.iid))
        whole = spiff.flow.runtime.load(session, spiff.flow.instance(spiff.iid))
    assert len(compacted.tasks) < len(whole.tasks)
    assert elements(compacted) == elements(whole)
    assert elements(compacted) == ({"start", "prepare", "review", "approved"}, {"prepare"})


COUNTING = diagram(  # a loop the engine runs by itself, 350 rounds in one command
    "counting",
    '<bpmn:startEvent id="start" /><bpmn:exclusiveGateway id="merge" />'
    '<bpmn:scriptTask id="count" scriptFormat="python"><bpmn:script>n = n + 1</bpmn:script>'
    '</bpmn:scriptTask><bpmn:exclusiveGateway id="enough" />'
    + user("report")
    + '<bpmn:endEvent id="end" />'
    + seq("start", "merge")
    + seq("merge", "count")
    + seq("count", "enough")
    + seq("enough", "merge", "n &lt; 350")
    + seq("enough", "report", "n &gt;= 350")
    + seq("report", "end"),
)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # the engine's own work: slow
def test_a_loop_too_deep_for_one_command_is_compacted_and_run_on(flow: Tradeflow) -> None:
    """Three levels a round: in its 333rd round the loop's next task lies past depth 1000
    and Spiff's engine steps stop short of it (as they do in a state saved deeper than
    that before trees were compacted). The engine compacts the tree and runs on. (With
    Spiff's own tree the command fails and says why: test_a_message_catch_in_a_loop.)"""
    flow.deploy([COUNTING], actor="owner")
    # 350 rounds in one command: more engine steps than a command's default budget
    flow.runtime.limits = dataclasses.replace(flow.runtime.limits, max_steps=10_000)
    iid = flow.start("counting", actor="cashier", variables={"n": 0})
    assert flow.variables(iid)["n"] == 350
    assert [t.element_id for t in flow.tasks_of(iid)] == ["report"]

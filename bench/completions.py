"""Task completions per second: Tradeflow's unit of work against bare SpiffWorkflow.

Both sides drive the same sequence of user-task completions through the shipped
``document_review`` diagram: per instance, prepare (clerk) and review (checker) alternate,
the review sends the documents back a few times and then accepts them, and a new instance
starts as the last one ends. One completion is one user task completed.

* bare SpiffWorkflow (the baseline): what a service without our engine would do per
  request, with the state kept in memory (no database): deserialize the JSON (spec
  embedded, Spiff's default), find the READY user task, update its data, run it, run the
  engine steps, serialize again.
* Tradeflow: ``flow.complete(...)`` on a SQLite file: lock, load, form check, maker-checker,
  run, reconcile queues and subscriptions, hash-chained audit rows, save, commit. The
  client's read of the next task id (``flow.tasks_of``) is not in the timed section; its
  cost is reported on its own line.

The machine is shared and noisy, so the two are measured in alternating rounds (bare,
ours, bare, ...) and the ratio is taken between the medians.

    .venv/bin/python bench/completions.py [--rounds 5] [--completions 200] [--warmup 20]
                                          [--profile [--top 25]]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.camunda.serializer import DEFAULT_CONFIG
from SpiffWorkflow.util.task import TaskState as SpiffState

from engine.db import Database
from engine.models import TaskState
from engine.schema import upgrade
from engine.tradeflow import Tradeflow

ROOT = Path(__file__).resolve().parent.parent
PROCESS = "document_review"
DIAGRAM = ROOT / "bpmn" / "document_review.bpmn"
TARGET = 0.7
RETURNS = 4  # reviews that send the documents back before one accepts: 10 completions/instance


@dataclass(frozen=True)
class Step:
    """One completion: which instance (by ordinal), which task, by whom, with what."""

    instance: int
    element: str
    actor: str
    data: dict[str, Any]


def workload() -> Iterator[Step]:
    """The endless, deterministic sequence of completions both sides perform."""
    instance = 0
    while True:
        for attempt in range(RETURNS + 1):
            yield Step(
                instance,
                "prepare_documents",
                "clerk",
                {"invoice_number": f"INV-{instance}-{attempt}"},
            )
            yield Step(
                instance, "review_documents", "checker", {"documents_ok": attempt == RETURNS}
            )
        instance += 1


def shipped_files() -> list[tuple[str, bytes]]:
    paths = sorted((ROOT / "bpmn").glob("*.bpmn")) + sorted((ROOT / "bpmn").glob("*.dmn"))
    paths += sorted((ROOT / "forms").glob("*.form"))
    return [(p.name, p.read_bytes()) for p in paths]


class Bare:
    """Bare SpiffWorkflow: the serialized state of each instance kept in a dict."""

    def __init__(self) -> None:
        parser = CamundaParser()
        parser.add_bpmn_file(str(DIAGRAM))
        self.spec = parser.get_spec(PROCESS)
        self.subprocess_specs = parser.get_subprocess_specs(PROCESS)
        self.serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(DEFAULT_CONFIG))
        self.states: dict[int, str] = {}
        self.steps = workload()
        self.finished = 0

    def _start(self, ordinal: int) -> None:
        workflow = BpmnWorkflow(self.spec, self.subprocess_specs)
        workflow.do_engine_steps()
        self.states[ordinal] = self.serializer.serialize_json(workflow)

    def run(self, count: int) -> float:
        """Perform the next ``count`` completions; seconds spent in load-complete-save."""
        spent = 0.0
        for _ in range(count):
            step = next(self.steps)
            if step.instance not in self.states:
                self._start(step.instance)
            began = time.perf_counter()
            workflow = self.serializer.deserialize_json(self.states[step.instance])
            task = workflow.get_tasks(state=SpiffState.READY, manual=True)[0]
            task.data.update(step.data)
            task.run()
            workflow.do_engine_steps()
            state = self.serializer.serialize_json(workflow)
            spent += time.perf_counter() - began
            if task.task_spec.bpmn_id != step.element:
                raise AssertionError(f"bare: expected {step.element}, ran {task.task_spec.bpmn_id}")
            if workflow.completed:
                del self.states[step.instance]
                self.finished += 1
            else:
                self.states[step.instance] = state
        return spent


class Ours:
    """Tradeflow on a SQLite file, with the real clock."""

    def __init__(self, directory: Path) -> None:
        self.db = Database(f"sqlite:///{directory / 'bench.db'}")
        upgrade(self.db)
        self.flow = Tradeflow(self.db)
        self.flow.deploy(shipped_files(), actor="bench")
        self.flow.add_user("clerk", ["documents_logistics"])
        self.flow.add_user("checker", ["risk_compliance"])
        self.instances: dict[int, int] = {}  # ordinal -> instance id
        self.steps = workload()
        self.finished = 0
        self.read_seconds = 0.0
        self.reads = 0

    def _next_task(self, instance_id: int, element: str) -> int:
        """What a client does before completing: one read of the instance's tasks."""
        began = time.perf_counter()
        tasks = self.flow.tasks_of(instance_id)
        self.read_seconds += time.perf_counter() - began
        self.reads += 1
        found = [t.id for t in tasks if t.state == TaskState.OPEN and t.element_id == element]
        if len(found) != 1:
            raise AssertionError(f"ours: expected one open {element}, found {found}")
        return found[0]

    def run(self, count: int, profiler: cProfile.Profile | None = None) -> float:
        """Perform the next ``count`` completions; seconds spent inside ``flow.complete``.

        A given profiler is switched on around the ``flow.complete`` calls only.
        """
        spent = 0.0
        for _ in range(count):
            step = next(self.steps)
            if step.instance not in self.instances:
                self.instances[step.instance] = self.flow.start(
                    PROCESS, actor="clerk", business_key=f"B-{step.instance}"
                )
            instance_id = self.instances[step.instance]
            task_id = self._next_task(instance_id, step.element)
            if profiler is not None:
                profiler.enable()
            began = time.perf_counter()
            self.flow.complete(task_id, actor=step.actor, data=step.data)
            spent += time.perf_counter() - began
            if profiler is not None:
                profiler.disable()
            if step.element == "review_documents" and step.data["documents_ok"]:
                status = self.flow.instance(instance_id).status
                if status != "completed":
                    raise AssertionError(f"ours: instance {instance_id} is {status}")
                del self.instances[step.instance]
                self.finished += 1
        return spent

    def close(self) -> None:
        self.db.dispose()


def measure(rounds: int, completions: int, warmup: int) -> None:
    bare_rates: list[float] = []
    our_rates: list[float] = []
    with tempfile.TemporaryDirectory(prefix="tradeflow-bench-") as tmp:
        bare, ours = Bare(), Ours(Path(tmp))
        try:
            bare.run(warmup)  # caches, lazy imports, SQLAlchemy statement compilation
            ours.run(warmup)
            ours.read_seconds, ours.reads = 0.0, 0
            for number in range(1, rounds + 1):
                # alternate which side goes first, so drift on the machine hits both alike
                order: list[tuple[list[float], Callable[[int], float]]] = [
                    (bare_rates, bare.run),
                    (our_rates, ours.run),
                ]
                if number % 2 == 0:
                    order.reverse()
                for rates, run in order:
                    rates.append(completions / run(completions))
                print(
                    f"  round {number}: bare {bare_rates[-1]:7.1f}/s   "
                    f"ours {our_rates[-1]:7.1f}/s   ratio {our_rates[-1] / bare_rates[-1]:.2f}",
                    flush=True,
                )
            read_ms = 1000 * ours.read_seconds / max(ours.reads, 1)
            instances = ours.finished
        finally:
            ours.close()
    bare_median = statistics.median(bare_rates)
    our_median = statistics.median(our_rates)
    ratio = our_median / bare_median
    print(
        f"task completions per second, {PROCESS}, SQLite file, {rounds} rounds x {completions}"
        f" (+{warmup} warm-up; {2 * (RETURNS + 1)} completions per instance,"
        f" {instances} instances finished)"
    )
    print(
        f"  bare SpiffWorkflow (load-complete-save, in memory): {bare_median:7.1f}/s"
        f"  ({1000 / bare_median:.2f} ms each)"
    )
    print(
        f"  Tradeflow unit of work (SQLite, audit, queues):     {our_median:7.1f}/s"
        f"  ({1000 / our_median:.2f} ms each)"
    )
    print(f"  ratio: {ratio:.2f}  (target >= {TARGET:.2f}{'' if ratio >= TARGET else ', NOT MET'})")
    print(
        f"  not timed: the client's read of the next task id (flow.tasks_of), {read_ms:.2f} ms each"
    )
    print(
        "  baseline keeps state in memory (no database, spec embedded, stock script engine);"
        " ours commits each completion to SQLite with audit rows"
    )


def profile(completions: int, warmup: int, top: int) -> None:
    """cProfile ``flow.complete`` over one round of ours (fresh database, after a warm-up)."""
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory(prefix="tradeflow-bench-") as tmp:
        ours = Ours(Path(tmp))
        try:
            ours.run(warmup)
            spent = ours.run(completions, profiler)
        finally:
            ours.close()
    print()
    print(
        f"profile: flow.complete only, {completions} completions after {warmup} warm-up"
        f" ({1000 * spent / completions:.2f} ms each under cProfile, which inflates"
        " call-heavy code such as SQLAlchemy)"
    )
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument(
        "--completions", type=int, default=200, help="completions per side per round (default 200)"
    )
    parser.add_argument(
        "--warmup", type=int, default=20, help="untimed completions per side first (default 20)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="then profile flow.complete over one more round with cProfile",
    )
    parser.add_argument("--top", type=int, default=25, help="profile entries shown (default 25)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.completions < 1 or args.warmup < 0:
        parser.error("--rounds and --completions must be positive, --warmup not negative")
    measure(args.rounds, args.completions, args.warmup)
    if args.profile:
        profile(args.completions, args.warmup, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())

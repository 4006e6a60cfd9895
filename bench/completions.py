"""Task completions per second: Tradeflow's unit of work against bare SpiffWorkflow.

Both sides drive the same sequence of user-task completions through the shipped
``document_review`` diagram: per instance, prepare (clerk) and review (checker) alternate,
the review sends the documents back a few times and then accepts them, and a new instance
starts as the last one ends. One completion is one user task completed.

* bare SpiffWorkflow (the baseline): what a service without our engine would do per
  request: read the state row from a SQLite file, deserialize the JSON (spec embedded,
  Spiff's default), find the READY user task, update its data, run it, run the engine
  steps, serialize, write the row, commit. Also shown: the same with the state in a dict.
* Tradeflow: ``flow.complete(...)`` on a SQLite file: lock, load, form check, maker-checker,
  run, reconcile queues and subscriptions, hash-chained audit rows, save, commit. The
  client's read of the next task id (``flow.tasks_of``) is not in the timed section; its
  cost is reported on its own line.

The machine is shared and noisy, so the two are measured in alternating rounds (bare,
ours, bare, ...) and the ratio is the median of the rounds' own ratios. Tradeflow is also run with
its live-workflow cache off, so the gain from not deserialising is visible on its own.

    .venv/bin/python -m bench.completions [--rounds 5] [--completions 200] [--warmup 20]
                                          [--profile [--top 25]]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import sqlite3
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

from cli.demo import shipped_files
from engine.caches import LiveWorkflows
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


class Bare:
    """Bare SpiffWorkflow: per completion, load the state, complete the task, save it.

    ``directory`` given: the state lives in a row of a SQLite file (WAL, synchronous
    NORMAL, as ours), read and written in one transaction per completion, which is
    the same load-complete-save cycle a service built on bare SpiffWorkflow would run.
    None: the state is kept in a dict (no database at all).
    """

    def __init__(self, directory: Path | None = None) -> None:
        parser = CamundaParser()
        parser.add_bpmn_file(str(DIAGRAM))
        self.spec = parser.get_spec(PROCESS)
        self.subprocess_specs = parser.get_subprocess_specs(PROCESS)
        self.serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(DEFAULT_CONFIG))
        self.states: dict[int, str] = {}
        self.db: sqlite3.Connection | None = None
        if directory is not None:
            self.db = sqlite3.connect(directory / "bare.db", isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("CREATE TABLE state (id INTEGER PRIMARY KEY, json TEXT NOT NULL)")
        self.steps = workload()
        self.finished = 0

    def _start(self, ordinal: int) -> None:
        workflow = BpmnWorkflow(self.spec, self.subprocess_specs)
        workflow.do_engine_steps()
        state = self.serializer.serialize_json(workflow)
        self.states[ordinal] = state
        if self.db is not None:
            self.db.execute("INSERT INTO state (id, json) VALUES (?, ?)", (ordinal, state))

    def _load(self, ordinal: int) -> str:
        if self.db is None:
            return self.states[ordinal]
        self.db.execute("BEGIN IMMEDIATE")
        row = self.db.execute("SELECT json FROM state WHERE id = ?", (ordinal,)).fetchone()
        return str(row[0])

    def _save(self, ordinal: int, state: str) -> None:
        if self.db is None:
            self.states[ordinal] = state
            return
        self.db.execute("UPDATE state SET json = ? WHERE id = ?", (state, ordinal))
        self.db.execute("COMMIT")

    def run(self, count: int) -> float:
        """Perform the next ``count`` completions; seconds spent in load-complete-save."""
        spent = 0.0
        for _ in range(count):
            step = next(self.steps)
            if step.instance not in self.states:
                self._start(step.instance)
            began = time.perf_counter()
            workflow = self.serializer.deserialize_json(self._load(step.instance))
            task = workflow.get_tasks(state=SpiffState.READY, manual=True)[0]
            task.data.update(step.data)
            task.run()
            workflow.do_engine_steps()
            self._save(step.instance, self.serializer.serialize_json(workflow))
            spent += time.perf_counter() - began
            if task.task_spec.bpmn_id != step.element:
                raise AssertionError(f"bare: expected {step.element}, ran {task.task_spec.bpmn_id}")
            if workflow.completed:
                self.finished += 1
        return spent

    def close(self) -> None:
        if self.db is not None:
            self.db.close()


class Ours:
    """Tradeflow on a SQLite file, with the real clock."""

    def __init__(self, directory: Path, *, cache_workflows: bool = True) -> None:
        self.db = Database(f"sqlite:///{directory / 'bench.db'}")
        upgrade(self.db)
        self.flow = Tradeflow(self.db)
        if not cache_workflows:  # every command deserialises its workflow from the row
            self.flow.runtime.live = LiveWorkflows(size=0)
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


SIDES = (
    ("bare SpiffWorkflow, state in memory (no database)", "memory"),
    ("bare SpiffWorkflow, state in a SQLite row", "bare"),
    ("Tradeflow, workflow cache off", "nocache"),
    ("Tradeflow unit of work", "ours"),
)


def measure(rounds: int, completions: int, warmup: int) -> None:
    rates: dict[str, list[float]] = {key: [] for _, key in SIDES}
    with tempfile.TemporaryDirectory(prefix="tradeflow-bench-") as tmp:
        root = Path(tmp)
        (root / "bare").mkdir()
        (root / "ours").mkdir()
        (root / "nocache").mkdir()
        memory, bare = Bare(), Bare(root / "bare")
        ours, nocache = Ours(root / "ours"), Ours(root / "nocache", cache_workflows=False)
        runs: dict[str, Callable[[int], float]] = {
            "memory": memory.run,
            "bare": bare.run,
            "nocache": nocache.run,
            "ours": ours.run,
        }
        try:
            for run in runs.values():
                run(warmup)  # caches, lazy imports, statement compilation
            ours.read_seconds, ours.reads = 0.0, 0
            for number in range(1, rounds + 1):
                # alternate the order, so drift on the machine hits every side alike
                order = list(runs.items()) if number % 2 else list(reversed(runs.items()))
                for key, run in order:
                    gc.collect()  # no side pays for the garbage of the one before it
                    rates[key].append(completions / run(completions))
                print(
                    f"  round {number}: "
                    + "  ".join(f"{key} {rates[key][-1]:7.1f}/s" for _, key in SIDES)
                    + f"   ratio {rates['ours'][-1] / rates['bare'][-1]:.2f}",
                    flush=True,
                )
            read_ms = 1000 * ours.read_seconds / max(ours.reads, 1)
            instances = ours.finished
        finally:
            for side in (memory, bare, ours, nocache):
                side.close()
    median = {key: statistics.median(values) for key, values in rates.items()}
    # Paired: each round's sides ran back to back, so their ratio cancels the drift of a
    # shared machine; the median of those ratios is the figure that counts.
    paired = [o / b for o, b in zip(rates["ours"], rates["bare"], strict=True)]
    ratio = statistics.median(paired)
    print(
        f"task completions per second, {PROCESS}, {rounds} rounds x {completions}"
        f" (+{warmup} warm-up; {2 * (RETURNS + 1)} completions per instance,"
        f" {instances} instances finished)"
    )
    for label, key in SIDES:
        print(f"  {label:52s} {median[key]:7.1f}/s  ({1000 / median[key]:.2f} ms each)")
    print(
        f"  ratio, Tradeflow / bare SpiffWorkflow with the same SQLite storage: {ratio:.2f}"
        f" (median of the rounds' ratios; of the medians: {median['ours'] / median['bare']:.2f})"
        f"  target >= {TARGET:.2f}{'' if ratio >= TARGET else ', NOT MET'}"
    )

    def paired_median(top: str, bottom: str) -> float:
        return statistics.median(a / b for a, b in zip(rates[top], rates[bottom], strict=True))

    print(
        f"  ratio, Tradeflow / bare in memory: {paired_median('ours', 'memory'):.2f};"
        f" with the workflow cache off / bare SQLite: {paired_median('nocache', 'bare'):.2f}"
    )
    print(
        f"  not timed: the client's read of the next task id (flow.tasks_of), {read_ms:.2f} ms each"
    )
    print(
        "  bare: spec embedded in every state, stock script engine, no queues, no audit;"
        " ours: lock, form check, maker-checker, queues, hash-chained audit, one commit each"
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

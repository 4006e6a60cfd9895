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

    .venv/bin/python -m bench.completions [--quick] [--rounds 5] [--completions 200]
                                          [--warmup 20] [--profile [--top 25]]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.bare import PER_INSTANCE, PROCESS, Bare, workload
from bench.harness import Column, Spread, Stopwatch, Table, against_bare, paired, parse, rounds
from cli.demo import shipped_files
from engine.runtime import LiveWorkflows
from engine.storage import Database, TaskState, upgrade
from engine.tradeflow import Tradeflow

TARGET = 0.7


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
        self.reads = Stopwatch()  # the client's reads of the next task, not timed

    def _next_task(self, instance_id: int, element: str) -> int:
        """What a client does before completing: one read of the instance's tasks."""
        with self.reads:
            tasks = self.flow.tasks_of(instance_id)
        found = [t.id for t in tasks if t.state == TaskState.OPEN and t.element_id == element]
        if len(found) != 1:
            raise AssertionError(f"ours: expected one open {element}, found {found}")
        return found[0]

    def run(self, count: int, profiler: cProfile.Profile | None = None) -> float:
        """Perform the next ``count`` completions; seconds spent inside ``flow.complete``.

        A given profiler is switched on around the ``flow.complete`` calls only.
        """
        watch = Stopwatch()
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
            with watch:
                self.flow.complete(task_id, actor=step.actor, data=step.data)
            if profiler is not None:
                profiler.disable()
            if step.element == "review_documents" and step.data["documents_ok"]:
                status = self.flow.instance(instance_id).status
                if status != "completed":
                    raise AssertionError(f"ours: instance {instance_id} is {status}")
                del self.instances[step.instance]
                self.finished += 1
        return watch.wall

    def close(self) -> None:
        self.db.dispose()


SIDES = {
    "memory": "bare SpiffWorkflow, state in memory (no database)",
    "bare": "bare SpiffWorkflow, state in a SQLite row",
    "nocache": "Tradeflow, workflow cache off",
    "ours": "Tradeflow unit of work",
}


def measure(rounds_: int, completions: int, warmup: int) -> None:
    with tempfile.TemporaryDirectory(prefix="tradeflow-bench-") as tmp:
        root = Path(tmp)
        for name in ("bare", "ours", "nocache"):
            (root / name).mkdir()
        memory, bare = Bare(), Bare(root / "bare")
        ours, nocache = Ours(root / "ours"), Ours(root / "nocache", cache_workflows=False)
        sides: dict[str, Bare | Ours] = {
            "memory": memory,
            "bare": bare,
            "nocache": nocache,
            "ours": ours,
        }
        try:
            for side in sides.values():
                side.run(warmup)  # caches, lazy imports, statement compilation
            ours.reads = Stopwatch()

            def show(number: int, rates: dict[str, list[float]]) -> None:
                print(
                    f"  round {number + 1}: "
                    + "  ".join(f"{key} {rates[key][-1]:7.1f}/s" for key in SIDES)
                    + f"   ratio {rates['ours'][-1] / rates['bare'][-1]:.2f}",
                    flush=True,
                )

            def rate(side: Bare | Ours) -> Callable[[], float]:
                return lambda: completions / side.run(completions)

            rates = rounds({key: rate(side) for key, side in sides.items()}, rounds_, show)
            read_ms = 1000 * ours.reads.wall / max(ours.reads.laps, 1)
            instances = ours.finished
        finally:
            for side in sides.values():
                side.close()
    print(
        f"task completions per second, {PROCESS}, {rounds_} rounds x {completions}"
        f" (+{warmup} warm-up; {PER_INSTANCE} completions per instance,"
        f" {instances} instances finished)"
    )
    table = Table(
        Column("", 50, left=True),
        Column("completions/s\nmedian (lowest-highest)", 24, ".1f"),
        Column("ms each\n(median)", 9, ".2f"),
    )
    table.print_header()
    for key, label in SIDES.items():
        spread = Spread.of(rates[key])
        table.print_row(label, spread, 1000 / spread.median)
    # Paired: each round's sides ran back to back, so their ratio cancels the drift of a
    # shared machine; the median of those ratios is the figure that counts.
    ratio = paired(rates["ours"], rates["bare"])
    print(
        "  "
        + against_bare("Tradeflow, same SQLite storage", rates["ours"], rates["bare"])
        + f"; target >= {TARGET:.2f}{'' if ratio.median >= TARGET else ', NOT MET'}"
    )
    print(
        f"  ratio, Tradeflow / bare in memory: {paired(rates['ours'], rates['memory']):.2f};"
        f" with the workflow cache off / bare SQLite: {paired(rates['nocache'], rates['bare']):.2f}"
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
    args = parse(parser, argv, {"rounds": 2, "completions": 20, "warmup": 5})
    if args.rounds < 1 or args.completions < 1 or args.warmup < 0:
        parser.error("--rounds and --completions must be positive, --warmup not negative")
    began = time.perf_counter()
    measure(args.rounds, args.completions, args.warmup)
    if args.profile:
        profile(args.completions, args.warmup, args.top)
    print(f"  ({time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Two versions of Tradeflow served side by side: completions per second over HTTP, code
against code in the same minutes.

The machine is shared and its speed drifts within minutes (docs/performance.md), so two runs of
bench/http_completions.py an hour apart compare the hours, not the code. Here both
versions run at once, each a ``tradeflow serve`` (one worker of one thread) on a
database of its own, and the 4 client threads of bench/served.py alternate short
bursts of chain completions between them (A then B, then B then A), with bare
SpiffWorkflow's cycle (``Bare`` of bench/bare.py) run between the bursts. Each
round gives both versions' rates, their ratios to bare, the server's CPU per completion,
and B/A; the medians of those are the figures.

A version is a git revision (checked out into a temporary worktree, removed afterwards)
or ``.`` for the working tree. Each version's server (and its ``db upgrade``, ``users
add`` and ``deploy``) runs with that tree first on PYTHONPATH; the bench itself (clients,
bare, bench/harness.py) is the current tree's. Both run on this virtual environment: it must
hold what both need (an old revision may want another server, say).

    .venv/bin/python -m bench.versus [--quick] REV_A [REV_B=.] [--store sqlite|postgresql]
                                     [--rounds 8] [--completions 150]
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.bare import PER_INSTANCE, Bare
from bench.harness import (
    ROOT,
    Column,
    Spread,
    Table,
    alternating,
    bracketed,
    cpu_seconds,
    paired,
    parse,
)
from bench.served import Worker, prepare, run_threads, server
from bench.stores import add_pg_url, pg_admin, pg_database

CLIENTS = 4
PG_DATABASE = "tradeflow_bench_versus"


@dataclass
class Side:
    name: str
    code: Path
    port: int = 0
    pid: int = 0
    tokens: dict[str, str] = field(default_factory=dict)
    clients: list[Worker] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)


@contextmanager
def checkout(revision: str) -> Iterator[Path]:
    """The tree of ``revision`` (``.``: the working tree itself)."""
    if revision == ".":
        yield ROOT
        return
    with tempfile.TemporaryDirectory(prefix="tradeflow-versus-") as tmp:
        path = Path(tmp) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(path), revision],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            yield path
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False
            )


@contextmanager
def served(side: Side, url: str, log: Path) -> Iterator[None]:
    """The side's version prepared on ``url`` and serving (one worker of one thread, no
    scheduler), until the block ends."""
    side.tokens = prepare(url, code=side.code)
    with server(url, 1, 1, log, code=side.code, scheduler=False) as (port, pids):
        side.port, [side.pid] = port, pids
        yield


def burst(side: Side, completions: int) -> None:
    """``completions`` chain completions per client on the side's server, timed."""
    gc.collect()
    before = cpu_seconds(side.pid)
    wall = run_threads(
        side.port,
        side.tokens,
        side.clients,
        lambda w, c: w.complete(c, completions, timed=False, reconnect=True, inbox=False),
    )
    total = CLIENTS * completions
    side.rates.append(total / wall)
    side.cpu_ms.append(1000 * (cpu_seconds(side.pid) - before) / total)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("a", help="a git revision (or . for the working tree)")
    parser.add_argument("b", nargs="?", default=".", help="another (default: .)")
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=8, help="rounds (8)")
    parser.add_argument("--completions", type=int, default=150, help="per client and burst (150)")
    add_pg_url(parser)
    args = parse(parser, argv, {"rounds": 2, "completions": 20})
    if args.rounds < 1 or args.completions < 1:
        parser.error("--rounds and --completions must be positive")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tradeflow-vs-")))
        sides = [Side("A", stack.enter_context(checkout(args.a)))]
        sides.append(Side("B", stack.enter_context(checkout(args.b))))
        admin = pg_admin(args.pg_url) if args.store == "postgresql" else None
        if args.store == "postgresql" and admin is None:
            return 1
        instances = args.completions * (args.rounds + 1) // PER_INSTANCE + 2
        for side in sides:
            if admin is not None:
                name = f"{PG_DATABASE}_{side.name.lower()}"
                url = stack.enter_context(pg_database(admin, args.pg_url, name))
            else:
                url = f"sqlite:///{tmp / side.name}.db"
            stack.enter_context(served(side, url, tmp / f"{side.name}.log"))
            side.clients = [Worker(f"{side.name}{n}") for n in range(CLIENTS)]
            run_threads(
                side.port, side.tokens, side.clients, lambda w, c: w.start_instances(c, instances)
            )
            burst(side, args.completions)  # warm-up
            side.rates.clear()
            side.cpu_ms.clear()
        bare = Bare(tmp)
        stack.callback(bare.close)
        bare.run(100)
        bare_rates: list[float] = []
        print(f"{args.a} (A) against {args.b} (B), {args.store}, {CLIENTS} clients", flush=True)
        a, b = sides
        for number in range(args.rounds):

            def bursts(number: int = number) -> None:
                for side in alternating(sides, number):
                    burst(side, args.completions)

            _, bare_rate = bracketed(bare.run, CLIENTS * args.completions, bursts)
            bare_rates.append(bare_rate)
            print(
                f"  round {number + 1}: bare {bare_rate:6.0f}/s"
                + "".join(
                    f"  {s.name} {s.rates[-1]:6.0f}/s ({s.rates[-1] / bare_rate:.2f},"
                    f" {s.cpu_ms[-1]:.2f} ms)"
                    for s in sides
                )
                + f"  B/A {b.rates[-1] / a.rates[-1]:.2f}",
                flush=True,
            )
    table = Table(
        Column("", 2, left=True),
        Column("ratio to bare\nmedian (range)", 18, ".2f"),
        Column("completions/s\nmedian (range)", 18, ".0f"),
        Column("server CPU ms\na completion", 18, ".2f"),
    )
    table.print_header()
    for side in sides:
        table.print_row(
            side.name,
            paired(side.rates, bare_rates),
            Spread.of(side.rates),
            Spread.of(side.cpu_ms),
        )
    print(f"  bare SpiffWorkflow between the bursts: {Spread.of(bare_rates):.0f} completions/s")
    print(f"  B/A {paired(b.rates, a.rates):.2f} (median of the rounds' own ratios)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

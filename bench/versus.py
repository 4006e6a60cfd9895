"""Two versions of Tradeflow served side by side: completions per second over HTTP, code
against code in the same minutes.

The machine is shared and its speed drifts by half within minutes, so two runs of
bench/http_completions.py an hour apart compare the hours, not the code. Here both
versions run at once, each a ``tradeflow serve`` (one worker of one thread) on a
database of its own, and the 4 client threads of bench/http_completions.py alternate short
bursts of chain completions between them (A then B, then B then A), with bare
SpiffWorkflow's cycle (``Bare`` of bench/completions.py) run between the bursts. Each
round gives both versions' rates, their ratios to bare, the server's CPU per completion,
and B/A; the medians of those are the figures.

A version is a git revision (checked out into a temporary worktree, removed afterwards)
or ``.`` for the working tree. Both run on this virtual environment: it must hold what
both need (an old revision may want another server, say).

    .venv/bin/python -m bench.versus REV_A [REV_B=.] [--store sqlite|postgresql]
                                     [--rounds 8] [--completions 150]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.completions import ROOT, Bare
from bench.http_completions import (
    PER_INSTANCE,
    PG_DATABASE,
    Worker,
    pg_admin,
    pg_database,
    run_threads,
)
from bench.served import _healthy, children, cpu_seconds, free_port

CLIENTS = 4
USERS = {"clerk": "documents_logistics", "checker": "risk_compliance"}


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


def _tradeflow(code: Path, url: str, *args: str) -> str:
    """``tradeflow ARGS`` as the version in ``code`` runs it."""
    env = {**os.environ, "TRADEFLOW_DATABASE_URL": url, "PYTHONPATH": str(code)}
    command = [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())"]
    done = subprocess.run(
        [*command, *args], env=env, cwd=code, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"tradeflow {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


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
    """The side's version prepared on ``url`` and serving, until the block ends."""
    _tradeflow(side.code, url, "db", "upgrade")
    for name, role in USERS.items():
        out = _tradeflow(side.code, url, "users", "add", name, "--role", role)
        side.tokens[name] = out.strip().splitlines()[-1]
    files = [str(p) for p in sorted((ROOT / "bpmn").glob("*.bpmn"))]
    files += [str(p) for p in sorted((ROOT / "bpmn").glob("*.dmn"))]
    files += [str(p) for p in sorted((ROOT / "forms").glob("*.form"))]
    _tradeflow(side.code, url, "deploy", *files)
    side.port = free_port()
    env = {**os.environ, "TRADEFLOW_DATABASE_URL": url, "PYTHONPATH": str(side.code)}
    command = [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())"]
    command += ["serve", "--host", "127.0.0.1", "--port", str(side.port)]
    command += ["--workers", "1", "--threads", "1", "--no-scheduler"]
    with log.open("w") as out:
        process = subprocess.Popen(
            command, env=env, cwd=side.code, stdout=out, stderr=out, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 60
        while not (len(children(process.pid)) == 1 and _healthy(side.port)):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{side.name} did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        [side.pid] = children(process.pid)
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def burst(side: Side, completions: int) -> None:
    """``completions`` chain completions per client on the side's server, timed."""
    gc.collect()
    before = cpu_seconds(side.pid)
    wall = run_threads(
        side.port,
        side.tokens,
        side.clients,
        lambda w, c: w.complete(c, completions, False, True, False),
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
    parser.add_argument(
        "--pg-url",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="a PostgreSQL database to connect to; databases are created beside it",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.completions < 1:
        parser.error("--rounds and --completions must be positive")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tradeflow-vs-")))
        sides = [Side("A", stack.enter_context(checkout(args.a)))]
        sides.append(Side("B", stack.enter_context(checkout(args.b))))
        admin = pg_admin(args.pg_url) if args.store == "postgresql" else None
        if args.store == "postgresql" and admin is None:
            return 1
        for side in sides:
            if admin is not None:
                name = f"{PG_DATABASE}_{side.name.lower()}"
                url = stack.enter_context(pg_database(admin, args.pg_url, name))
            else:
                url = f"sqlite:///{tmp / side.name}.db"
            stack.enter_context(served(side, url, tmp / f"{side.name}.log"))
            side.clients = [Worker(f"{side.name}{n}") for n in range(CLIENTS)]
            per_client = args.completions * (args.rounds + 1)
            run_threads(
                side.port,
                side.tokens,
                side.clients,
                lambda w, c, n=per_client // PER_INSTANCE + 2: w.start_instances(c, n),
            )
            burst(side, args.completions)  # warm-up
            side.rates.clear()
            side.cpu_ms.clear()
        bare = Bare(tmp)
        bare.run(100)
        bare_rates: list[float] = []
        print(f"{args.a} (A) against {args.b} (B), {args.store}, {CLIENTS} clients", flush=True)
        for number in range(args.rounds):
            total = CLIENTS * args.completions
            gc.collect()
            seconds = bare.run(total // 2)
            for side in sides if number % 2 == 0 else reversed(sides):
                burst(side, args.completions)
            gc.collect()
            seconds += bare.run(total - total // 2)
            bare_rates.append(total / seconds)
            a, b = sides
            print(
                f"  round {number + 1}: bare {bare_rates[-1]:6.0f}/s"
                + "".join(
                    f"  {s.name} {s.rates[-1]:6.0f}/s ({s.rates[-1] / bare_rates[-1]:.2f},"
                    f" {s.cpu_ms[-1]:.2f} ms)"
                    for s in sides
                )
                + f"  B/A {b.rates[-1] / a.rates[-1]:.2f}",
                flush=True,
            )
        bare.close()
    median = statistics.median
    a, b = sides
    for side in sides:
        ratios = [r / b for r, b in zip(side.rates, bare_rates, strict=True)]
        print(
            f"  {side.name}: ratio to bare {median(ratios):.2f} ({min(ratios):.2f}-"
            f"{max(ratios):.2f}), {median(side.rates):.0f} completions/s,"
            f" server CPU {median(side.cpu_ms):.2f} ms a completion (medians)"
        )
    print(f"  B/A {median(y / x for x, y in zip(a.rates, b.rates, strict=True)):.2f} (median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

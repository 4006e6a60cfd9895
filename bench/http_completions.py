"""Task completions per second through HTTP, against bare SpiffWorkflow in the same run.

A real ``tradeflow serve`` (granian) runs as a subprocess on a free port of
127.0.0.1, set up the way an operator would: ``tradeflow db upgrade``, ``tradeflow users
add`` (a clerk in documents_logistics, a checker in risk_compliance), ``tradeflow deploy``
of the shipped files. Client threads (4 by default, one keep-alive ``http.client``
connection each) drive the ``document_review`` workload of bench/bare.py, each on
instances of its own, as the user whose turn it is, in one of two ways:

* chain (the headline): ``POST /api/v1/tasks/{id}/complete`` with the form data, the task
  id taken from the previous answer (a completion answers with the instance's open tasks,
  ``next_tasks``; a start with its ``tasks``), checked to be the expected element. This is
  the counterpart of the bare cycle: one request per completion.
* inbox: the same, but first ``GET /api/v1/tasks?instance_id=...`` to find the task, as an
  employee's client that reads its inbox before each step does: two requests per
  completion.

Not timed: starting the instances (``POST /api/v1/instances``, all before the clock
starts) and a warm-up of every thread. Timed: the rest, wall clock from all threads'
start to the last one's end; the rate is completions / wall time.

Bare SpiffWorkflow's load-complete-save (``Bare`` of bench/bare.py, state in a SQLite
row) runs in this process for as many completions as the HTTP run did, half just
before and half just after it, while the server idles; the ratio is HTTP / bare.

SQLite (a file in a temporary directory) and PostgreSQL (a database of its own, created
and dropped here; skipped with a message if the server does not answer) are measured with
one to several worker processes.

A client connects anew when it moves on to its next instance (every 20 requests), so the
connections spread over the workers as many clients' would: a gthread worker keeps a
keep-alive connection to the end, and four long-lived ones can all land on one worker
(``--sticky`` keeps one connection per client for the whole run). Also shown: CPU
seconds per completion of the worker processes (server) and of this process (client),
how busy all CPUs were (other processes on the machine included), and each worker's
share of the server CPU (split).

    .venv/bin/python -m bench.http_completions [--quick] [--completions 200] [--warmup 20]
        [--clients 4] [--modes chain,inbox] [--sqlite-workers 1,2,3,4] [--pg-workers 1,2,4]
        [--threads 1] [--sticky]
        [--pg-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.bare import PER_INSTANCE, PROCESS, Bare
from bench.harness import (
    Column,
    Table,
    bracketed,
    busy_share,
    cpu_seconds,
    machine_jiffies,
    parse,
    percentile,
)
from bench.served import Worker, prepare, run_threads, server
from bench.stores import add_pg_url, postgres

TARGET_ONE = 0.5  # HTTP / bare, one worker process
TARGET_MANY = 1.0  # HTTP / bare, several worker processes on PostgreSQL
PG_DATABASE = "tradeflow_bench_http"


@dataclass(frozen=True)
class Result:
    store: str
    workers: int
    mode: str  # chain or inbox
    completions: int
    wall: float
    get_p50: float | None
    post_p50: float
    post_p95: float
    bare_rate: float
    busy: float  # share of the machine's CPUs busy during the timed run
    worker_cpu: list[float]  # CPU seconds of each worker process in the timed run
    client_cpu: float  # CPU seconds of this process (the client threads) in the timed run

    @property
    def rate(self) -> float:
        return self.completions / self.wall

    @property
    def ratio(self) -> float:
        return self.rate / self.bare_rate


@dataclass(frozen=True)
class Timed:
    """What one timed run saw, between the halves of bare's run."""

    wall: float
    busy: float
    worker_cpu: list[float]
    client_cpu: float


def measure(
    store: str,
    url: str,
    tokens: dict[str, str],
    bare: Bare,
    workers: int,
    modes: list[str],
    args: argparse.Namespace,
    logs: Path,
) -> list[Result]:
    """One server; a timed run per mode on it."""
    results = []
    with server(url, workers, args.threads, logs / f"{store}-w{workers}.log") as (port, pids):
        for mode in modes:
            results.append(run_mode(store, workers, mode, port, pids, tokens, bare, args))
            show(results[-1])
    return results


def run_mode(
    store: str,
    workers: int,
    mode: str,
    port: int,
    pids: list[int],
    tokens: dict[str, str],
    bare: Bare,
    args: argparse.Namespace,
) -> Result:
    """Clients of their own start their instances, warm up, then run timed, between the
    halves of bare's run."""
    inbox, reconnect = mode == "inbox", not args.sticky
    clients = [Worker(f"{store}-w{workers}-{mode}-c{n}") for n in range(args.clients)]
    instances = -(-(args.warmup + args.completions) // PER_INSTANCE) + 1
    run_threads(port, tokens, clients, lambda w, c: w.start_instances(c, instances))

    def complete(count: int, timed: bool) -> float:
        return run_threads(
            port,
            tokens,
            clients,
            lambda w, c: w.complete(c, count, timed=timed, reconnect=reconnect, inbox=inbox),
        )

    complete(args.warmup, False)

    def timed_run() -> Timed:
        cpu_before = [cpu_seconds(p) for p in pids]
        busy_before = machine_jiffies()
        client_before = time.process_time()
        wall = complete(args.completions, True)
        busy = busy_share(busy_before, machine_jiffies())
        client_cpu = time.process_time() - client_before
        cpu = [cpu_seconds(p) - b for p, b in zip(pids, cpu_before, strict=True)]
        return Timed(wall, busy, sorted(cpu, reverse=True), client_cpu)

    total = args.clients * args.completions
    run, bare_rate = bracketed(bare.run, total, timed_run)
    posts = [s for w in clients for s in w.post_seconds]
    gets = [s for w in clients for s in w.get_seconds]
    return Result(
        store=store,
        workers=workers,
        mode=mode,
        completions=total,
        wall=run.wall,
        get_p50=percentile(gets, 0.5) if gets else None,
        post_p50=percentile(posts, 0.5),
        post_p95=percentile(posts, 0.95),
        bare_rate=bare_rate,
        busy=run.busy,
        worker_cpu=run.worker_cpu,
        client_cpu=run.client_cpu,
    )


# -- report --------------------------------------------------------------------------

TABLE = Table(
    Column("store", 10, left=True),
    Column("w", 2, "d"),
    Column("mode", 5, left=True),
    Column("per s\nHTTP", 7, ".1f"),
    Column("per s\nbare", 7, ".1f"),
    Column("HTTP/\nbare", 6, ".2f"),
    Column("POST ms\np50", 7, ".1f"),
    Column("POST ms\np95", 7, ".1f"),
    Column("GET ms\np50", 6, ".1f"),
    Column("CPU ms\nserver", 6, ".1f"),
    Column("CPU ms\nclient", 6, ".1f"),
    Column("CPU\nbusy %", 6, ".0f"),
    Column("server\nsplit %", 8, left=True),
)


def show(result: Result) -> None:
    split = "/".join(
        f"{100 * s / max(sum(result.worker_cpu), 1e-9):.0f}" for s in result.worker_cpu
    )
    TABLE.print_row(
        result.store,
        result.workers,
        result.mode,
        result.rate,
        result.bare_rate,
        result.ratio,
        1000 * result.post_p50,
        1000 * result.post_p95,
        None if result.get_p50 is None else 1000 * result.get_p50,
        1000 * sum(result.worker_cpu) / result.completions,
        1000 * result.client_cpu / result.completions,
        100 * result.busy,
        split,
    )


def verdict(results: list[Result]) -> None:
    chain = [r for r in results if r.mode == "chain"]
    one = [r for r in chain if r.workers == 1]
    many = [r for r in chain if r.workers > 1 and r.store == "postgresql"]
    for label, rows, target in (
        ("one worker process", one, TARGET_ONE),
        ("several worker processes, PostgreSQL", many, TARGET_MANY),
    ):
        if not rows:
            continue
        best = max(rows, key=lambda r: r.ratio)
        met = "met" if best.ratio >= target else "NOT MET"
        print(
            f"  target HTTP/bare >= {target:.1f} with {label}: best {best.ratio:.2f}"
            f" ({best.store}, w={best.workers}): {met}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--completions", type=int, default=200, help="timed completions per client (200)"
    )
    parser.add_argument("--warmup", type=int, default=20, help="untimed ones first (20)")
    parser.add_argument("--clients", type=int, default=4, help="client threads (4)")
    parser.add_argument(
        "--threads", type=int, default=1, help="threads per worker (1, as `tradeflow serve`)"
    )
    parser.add_argument(
        "--modes",
        default="chain,inbox",
        help="chain: task ids from the previous answer; inbox: GET the inbox first (both)",
    )
    parser.add_argument(
        "--sticky",
        action="store_true",
        help="keep each client's connection for the whole run (default: a new connection"
        " per instance, so that connections spread over the worker processes)",
    )
    parser.add_argument("--sqlite-workers", default="1,2,3,4", help="worker counts (1,2,3,4)")
    parser.add_argument("--pg-workers", default="1,2,4", help="worker counts ('' skips) (1,2,4)")
    add_pg_url(parser)
    args = parse(
        parser,
        argv,
        {"completions": 20, "warmup": 5, "clients": 2, "sqlite_workers": "1", "pg_workers": "1"},
    )
    if args.completions < 1 or args.warmup < 0 or args.clients < 1 or args.threads < 1:
        parser.error("--completions, --clients and --threads must be positive")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"chain", "inbox"}:
        parser.error("--modes takes chain and/or inbox")
    sqlite_workers = [int(n) for n in args.sqlite_workers.split(",") if n.strip()]
    pg_workers = [int(n) for n in args.pg_workers.split(",") if n.strip()]

    began = time.perf_counter()
    results: list[Result] = []
    print(
        f"task completions per second over HTTP, {PROCESS} ({PER_INSTANCE} per instance),"
        f" {args.clients} client threads x {args.completions} timed (+{args.warmup} warm-up),"
        f" granian, {args.threads} Python thread(s) per worker, {os.cpu_count()} CPUs"
    )
    TABLE.print_header()
    with tempfile.TemporaryDirectory(prefix="tradeflow-http-") as tmp:
        root = Path(tmp)
        (root / "bare").mkdir()
        bare = Bare(root / "bare")
        try:
            bare.run(50)  # warm-up: imports, caches
            if sqlite_workers:
                url = f"sqlite:///{root / 'http.db'}"
                tokens = prepare(url)
                for workers in sqlite_workers:
                    results += measure("sqlite", url, tokens, bare, workers, modes, args, root)
            if pg_workers:
                with postgres(args.pg_url, PG_DATABASE) as pg_url:
                    if pg_url is not None:
                        tokens = prepare(pg_url)
                        for workers in pg_workers:
                            results += measure(
                                "postgresql", pg_url, tokens, bare, workers, modes, args, root
                            )
        finally:
            bare.close()
    print(
        "  chain: one POST per completion, the task id from the previous answer; inbox: a"
        " GET of the inbox first; rates: completions / wall time; bare: Bare of"
        " bench/bare.py, same count, half before and half after each HTTP run;"
        " busy: all CPUs, timed run"
    )
    verdict(results)
    print(f"  ({time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

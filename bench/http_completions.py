"""Task completions per second through HTTP, against bare SpiffWorkflow in the same run.

A real ``tradeflow serve`` (granian) runs as a subprocess on a free port of
127.0.0.1, set up the way an operator would: ``tradeflow db upgrade``, ``tradeflow users
add`` (a clerk in documents_logistics, a checker in risk_compliance), ``tradeflow deploy``
of the shipped files. Client threads (4 by default, one keep-alive ``http.client``
connection each) drive the ``document_review`` workload of bench/completions.py, each on
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

Bare SpiffWorkflow's load-complete-save (``Bare`` of bench/completions.py, state in a
SQLite row) runs in this process for as many completions as the HTTP run did, half just
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

    .venv/bin/python -m bench.http_completions [--completions 200] [--warmup 20] [--clients 4]
        [--modes chain,inbox] [--sqlite-workers 1,2,3,4] [--pg-workers 1,2,4] [--threads 1]
        [--sticky]
        [--pg-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from bench.completions import PROCESS, RETURNS, Bare, Step, workload
from bench.served import cpu_seconds, machine_busy, prepare, server

PER_INSTANCE = 2 * (RETURNS + 1)  # completions per document_review instance
TARGET_ONE = 0.5  # HTTP / bare, one worker process
TARGET_MANY = 1.0  # HTTP / bare, several worker processes on PostgreSQL
PG_DATABASE = "tradeflow_bench_http"


# -- the server ----------------------------------------------------------------------


class Client:
    """One keep-alive connection; JSON in and out."""

    def __init__(self, port: int, tokens: dict[str, str]) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {
            name: {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            for name, token in tokens.items()
        }

    def call(self, method: str, path: str, user: str, body: Any = None, expect: int = 200) -> Any:
        payload = None if body is None else json.dumps(body)
        self.conn.request(method, path, body=payload, headers=self.headers[user])
        response = self.conn.getresponse()
        data = response.read()
        if response.status != expect:
            raise RuntimeError(f"{method} {path} as {user}: {response.status} {data[:500]!r}")
        return json.loads(data)

    def close(self) -> None:
        self.conn.close()


@dataclass
class Worker:
    """A client thread's state: its instances and its place in the workload."""

    tag: str
    steps: Iterator[Step] = field(default_factory=workload)
    instances: dict[int, int] = field(default_factory=dict)  # ordinal -> instance id
    # ordinal -> the instance's open tasks as the last answer gave them (id, element)
    known: dict[int, list[tuple[int, str]]] = field(default_factory=dict)
    get_seconds: list[float] = field(default_factory=list)
    post_seconds: list[float] = field(default_factory=list)
    ended: float = 0.0
    error: BaseException | None = None

    def start_instances(self, client: Client, count: int) -> None:
        first = len(self.instances)
        for ordinal in range(first, first + count):
            body = {"definition": PROCESS, "business_key": f"{self.tag}-{ordinal}"}
            found = client.call("POST", "/api/v1/instances", "clerk", body, expect=201)
            self.instances[ordinal] = int(found["id"])
            self.known[ordinal] = [(t["id"], t["element_id"]) for t in found["tasks"]]

    def complete(
        self, client: Client, count: int, timed: bool, reconnect: bool, inbox: bool
    ) -> None:
        current = -1
        for _ in range(count):
            step = next(self.steps)
            instance_id = self.instances[step.instance]
            if reconnect and step.instance != current and current >= 0:
                client.close()  # the next request connects anew, to whichever worker accepts
            current = step.instance
            began = time.perf_counter()
            if inbox:
                page = client.call("GET", f"/api/v1/tasks?instance_id={instance_id}", step.actor)
                open_tasks = [(t["id"], t["element_id"]) for t in page["items"]]
            else:
                open_tasks = self.known[step.instance]
            read = time.perf_counter()
            if len(open_tasks) != 1 or open_tasks[0][1] != step.element:
                raise AssertionError(f"{instance_id}: expected {step.element}: {open_tasks}")
            path = f"/api/v1/tasks/{open_tasks[0][0]}/complete"
            posted = time.perf_counter()
            done = client.call("POST", path, step.actor, {"data": step.data})
            ended = time.perf_counter()
            if done["state"] != "completed":
                raise AssertionError(f"{path}: {done}")
            self.known[step.instance] = [(t["id"], t["element_id"]) for t in done["next_tasks"]]
            if timed:
                if inbox:
                    self.get_seconds.append(read - began)
                self.post_seconds.append(ended - posted)


def run_threads(port: int, tokens: dict[str, str], workers: list[Worker], job: Any) -> float:
    """Run ``job(worker, client)`` on a thread per worker, started together; wall seconds."""
    barrier = threading.Barrier(len(workers) + 1)

    def body(worker: Worker) -> None:
        client = Client(port, tokens)
        try:
            barrier.wait()
            job(worker, client)
        except BaseException as exc:
            worker.error = exc
        finally:
            worker.ended = time.perf_counter()
            client.close()

    threads = [threading.Thread(target=body, args=(w,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    for worker in workers:
        if worker.error is not None:
            raise worker.error
    return max(w.ended for w in workers) - began


# -- one measurement -----------------------------------------------------------------


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
    reconnect = not args.sticky
    results = []
    with server(url, workers, args.threads, logs / f"{store}-w{workers}.log") as (port, pids):
        for mode in modes:
            inbox = mode == "inbox"
            tag = f"{store}-w{workers}-{mode}"
            clients = [Worker(f"{tag}-c{n}") for n in range(args.clients)]
            per_client = args.warmup + args.completions
            instances = -(-per_client // PER_INSTANCE) + 1
            run_threads(port, tokens, clients, lambda w, c, n=instances: w.start_instances(c, n))
            run_threads(
                port,
                tokens,
                clients,
                lambda w, c, i=inbox: w.complete(c, args.warmup, False, reconnect, i),
            )
            total = args.clients * args.completions
            gc.collect()
            bare_seconds = bare.run(total // 2)
            gc.collect()
            cpu_before = [cpu_seconds(p) for p in pids]
            busy_before = machine_busy()
            client_before = sum(os.times()[:2])
            wall = run_threads(
                port,
                tokens,
                clients,
                lambda w, c, i=inbox: w.complete(c, args.completions, True, reconnect, i),
            )
            busy_after = machine_busy()
            client_cpu = sum(os.times()[:2]) - client_before
            cpu = [cpu_seconds(p) - b for p, b in zip(pids, cpu_before, strict=True)]
            gc.collect()
            bare_seconds += bare.run(total - total // 2)
            posts = [s for w in clients for s in w.post_seconds]
            gets = [s for w in clients for s in w.get_seconds]
            results.append(
                Result(
                    store=store,
                    workers=workers,
                    mode=mode,
                    completions=total,
                    wall=wall,
                    get_p50=statistics.median(gets) if gets else None,
                    post_p50=statistics.median(posts),
                    post_p95=statistics.quantiles(posts, n=20)[-1],
                    bare_rate=total / bare_seconds,
                    busy=(busy_after[0] - busy_before[0]) / max(busy_after[1] - busy_before[1], 1),
                    worker_cpu=sorted(cpu, reverse=True),
                    client_cpu=client_cpu,
                )
            )
            show(results[-1])
    return results


# -- PostgreSQL ----------------------------------------------------------------------


def pg_admin(url: str) -> psycopg.Connection[Any] | None:
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        print(f"PostgreSQL at {url} does not answer ({exc.__class__.__name__}): skipped")
        return None


@contextmanager
def pg_database(admin: psycopg.Connection[Any], url: str, name: str) -> Iterator[str]:
    """A fresh database ``name`` on the server of ``url``, dropped afterwards; its URL."""
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- report --------------------------------------------------------------------------


def show(result: Result) -> None:
    split = "/".join(
        f"{100 * s / max(sum(result.worker_cpu), 1e-9):.0f}" for s in result.worker_cpu
    )
    get = f"{1000 * result.get_p50:5.1f}" if result.get_p50 is not None else "    -"
    print(
        f"  {result.store:10s} {result.workers:>2d} {result.mode:5s} {result.rate:7.1f}"
        f" {result.bare_rate:7.1f}  {result.ratio:5.2f}"
        f"  {1000 * result.post_p50:5.1f} {1000 * result.post_p95:5.1f} {get}"
        f"  {1000 * sum(result.worker_cpu) / result.completions:5.1f}"
        f" {1000 * result.client_cpu / result.completions:5.1f} {100 * result.busy:4.0f}%"
        f"  {split}",
        flush=True,
    )


HEADER = """\
                        completions/s  HTTP/   POST ms     GET   CPU ms/compl.  CPU  server
  store       w mode      HTTP    bare  bare   p50   p95   p50  server client busy  split %\
"""


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
    parser.add_argument(
        "--pg-url",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="a PostgreSQL database to connect to; the benchmark creates its own beside it",
    )
    args = parser.parse_args(argv)
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
    print(HEADER, flush=True)
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
            admin = pg_admin(args.pg_url) if pg_workers else None
            if admin is not None:
                with admin, pg_database(admin, args.pg_url, PG_DATABASE) as url:
                    tokens = prepare(url)
                    for workers in pg_workers:
                        results += measure(
                            "postgresql", url, tokens, bare, workers, modes, args, root
                        )
        finally:
            bare.close()
    print(
        "  chain: one POST per completion, the task id from the previous answer; inbox: a"
        " GET of the inbox first; rates: completions / wall time; bare: Bare of"
        " bench/completions.py, same count, half before and half after each HTTP run;"
        " busy: all CPUs, timed run"
    )
    verdict(results)
    print(f"  ({time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

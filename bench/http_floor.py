"""The floor under bench/http_completions.py: the server with no work to do.

granian, set as ``tradeflow serve`` sets it (WSGI, one worker process, one Python thread,
HTTP/1, no access log), serves a Flask app whose one route reads the JSON body of a task completion
and answers a JSON body of the same shape as a real completion's. The same four keep-alive
client threads post to it as fast as it answers, and bare SpiffWorkflow's
load-complete-save cycle (``Bare`` of bench/bare.py) runs in this process for as
many completions, half before and half after. The ratio says how many empty requests the
server answers in the time bare completes one task. Against the target of 0.5 (HTTP /
bare), 1 / ratio is the share of a completion's budget spent before any work is done.

    .venv/bin/python -m bench.http_floor [--quick] [--requests 1000] [--clients 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bare import Bare, workload
from bench.harness import Column, Spread, Table, bracketed, paired, parse
from bench.served import Client, Worker, free_port, run_threads

DATA = next(workload()).data  # a completion's form data, as the real bench sends it

GRANIAN = Path(sys.executable).with_name("granian")
APP = """
from flask import Flask, jsonify, request

app = Flask(__name__)
TASK = {"id": 2, "instance_id": 1, "business_key": "B-1", "element_id": "review_documents",
        "name": "Review documents", "roles": ["risk_compliance"], "assignee": None,
        "state": "open", "created_at": "2026-11-27T10:00:00+00:00",
        "due_at": "2026-11-27T18:00:00+00:00", "priority": 50, "form_id": 3}


@app.post("/api/v1/tasks/<int:task_id>/complete")
def complete(task_id):
    request.get_json()
    return jsonify({**TASK, "id": task_id, "state": "completed", "next_tasks": [TASK]})
"""


TOKENS = {"anyone": "x"}  # the app reads no token; the header is sent as a real client does


def post(client: Client, count: int) -> None:
    for n in range(count):
        client.call("POST", f"/api/v1/tasks/{n + 1}/complete", "anyone", {"data": DATA})


def timed(port: int, clients: int, per_client: int) -> float:
    """Wall seconds for ``clients`` threads (the completion benches' clients, started
    together) to post ``per_client`` completions each; a client's error is raised here."""
    workers = [Worker(f"floor-{n}") for n in range(clients)]
    return run_threads(port, TOKENS, workers, lambda _, client: post(client, per_client))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1000, help="per client (1000)")
    parser.add_argument("--clients", type=int, default=4, help="client threads (4)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (3)")
    args = parse(parser, argv, {"requests": 100, "clients": 2, "rounds": 2})
    rates: list[float] = []
    bare_rates: list[float] = []
    table = Table(
        Column("round", 5, "d"),
        Column("empty requests\nper s", 14, ".1f"),
        Column("\nms each", 8, ".2f"),
        Column("bare completions\nper s", 16, ".1f"),
        Column("\nms each", 8, ".2f"),
        Column("requests per\nbare completion", 15, ".2f"),
    )
    with tempfile.TemporaryDirectory(prefix="tradeflow-floor-") as tmp:
        root = Path(tmp)
        (root / "floor_app.py").write_text(APP)
        port = free_port()
        command = [str(GRANIAN), "--interface", "wsgi", "--workers", "1"]
        command += ["--blocking-threads", "1", "--http", "1", "--no-ws"]
        command += ["--host", "127.0.0.1", "--port", str(port), "floor_app:app"]
        server = subprocess.Popen(
            command, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        bare = Bare(root)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    timed(port, 1, 1)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            bare.run(50)
            timed(port, args.clients, 50)  # warm-up
            total = args.clients * args.requests
            table.print_header()
            for number in range(1, args.rounds + 1):
                wall, bare_rate = bracketed(
                    bare.run, total, lambda: timed(port, args.clients, args.requests)
                )
                rates.append(total / wall)
                bare_rates.append(bare_rate)
                table.print_row(
                    number,
                    rates[-1],
                    1000 / rates[-1],
                    bare_rate,
                    1000 / bare_rate,
                    rates[-1] / bare_rate,
                )
        finally:
            bare.close()
            server.terminate()
            server.wait(timeout=20)
    ratio = paired(rates, bare_rates)
    print(
        f"the server with nothing to do (granian, one worker of one thread, Flask, JSON),"
        f" {args.clients} clients: {ratio:.2f} requests per bare completion"
        f" ({Spread.of(rates):.0f} a second, bare {Spread.of(bare_rates):.0f});"
        f" at the target HTTP/bare >= 0.5 it takes {0.5 / ratio.median:.0%} of a"
        " completion's budget"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Soak: three `tradeflow serve` processes on PostgreSQL, 16 clients, mixed work, minutes.

The clients, each a thread with its own keep-alive connection, loop over:
* a document review: start, the clerk claims and completes, the checker reviews (sends it
  back once in three), to the end;
* a payment collection: start, invoice, then the bank's ``payment_received`` message;
* a short wait: start a process whose timer fires five seconds later (the servers'
  schedulers fire it), then complete the task it leads to;
* a race: two clerks claim the same open task at once (one 200, one 409).

Every answer is recorded. Afterwards, on the database: no 5xx; every acknowledged
completion is completed, once, in the rows and in the audit trail; each running
instance's open task rows are exactly its workflow's ready user tasks; every audit chain
verifies (``tradeflow verify``); every timer that fell due fired exactly once.

    .venv/bin/python -m bench.soak [--quick] [--seconds 180] [--clients 16] [--workers 3]
        [--pg-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from SpiffWorkflow.util.task import TaskState as SpiffState
from sqlalchemy import select

from bench.harness import ROOT, Column, Table, parse, percentile
from bench.served import prepare, server
from bench.stores import add_pg_url, postgres
from engine.queues import ROW
from engine.storage import AuditEvent, Database, HumanTask, Instance, InstanceStatus, TaskState
from engine.tradeflow import Tradeflow

DATABASE = "tradeflow_soak"
USERS = {
    "clerk": ("--role", "documents_logistics"),
    "clerk2": ("--role", "documents_logistics"),
    "checker": ("--role", "risk_compliance"),
    "cashier": ("--role", "finance"),
    "bank": ("--integration",),
}
WAIT = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="d_soak_wait"
    targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="soak_wait" isExecutable="true">
    <bpmn:startEvent id="s" />
    <bpmn:intermediateCatchEvent id="pause">
      <bpmn:timerEventDefinition>
        <bpmn:timeDuration xsi:type="bpmn:tFormalExpression">PT5S</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:userTask id="after_wait" camunda:candidateGroups="finance" />
    <bpmn:endEvent id="e" />
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="pause" />
    <bpmn:sequenceFlow id="f2" sourceRef="pause" targetRef="after_wait" />
    <bpmn:sequenceFlow id="f3" sourceRef="after_wait" targetRef="e" />
  </bpmn:process>
</bpmn:definitions>
"""


@dataclass
class Log:
    """What the clients saw, shared between their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    completed: list[int] = field(default_factory=list)  # task ids acknowledged 200
    waits: list[int] = field(default_factory=list)  # soak_wait instances started
    problems: list[str] = field(default_factory=list)

    def record(self, op: str, status: int, took: float) -> None:
        with self.lock:
            self.statuses[(op, status)] += 1
            self.seconds[op].append(took)


class Client:
    def __init__(self, port: int, tokens: dict[str, str], log: Log) -> None:
        self.port, self.tokens, self.log = port, tokens, log
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, op: str, method: str, path: str, user: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers["Content-Type"] = "application/json"
        began = time.perf_counter()
        for attempt in range(2):
            try:
                self.conn.request(method, "/api/v1" + path, body=payload, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (OSError, http.client.HTTPException) as exc:
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                # an idle keep-alive connection the server closed: the request never got
                # there, so send it again on a new one (as urllib3 does); else report it
                idle = isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError)
                if attempt == 0 and idle:
                    continue
                with self.log.lock:
                    self.log.problems.append(f"{op}: {type(exc).__name__}: {exc}")
                return 0, None
        self.log.record(op, response.status, time.perf_counter() - began)
        if response.status >= 500:
            with self.log.lock:
                self.log.problems.append(f"{op} {method} {path}: {response.status} {data[:300]!r}")
        return response.status, json.loads(data) if data else None

    def complete(self, task_id: int, user: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        status, body = self.call("complete", "POST", f"/tasks/{task_id}/complete", user,
                                 {"data": data})  # fmt: skip
        if status != 200:
            with self.log.lock:
                self.log.problems.append(f"complete {task_id} as {user}: {status} {body}")
            return []
        with self.log.lock:
            self.log.completed.append(task_id)
        return list(body["next_tasks"])


def review(client: Client, n: str) -> None:
    start = {"definition": "document_review", "business_key": f"DR-{n}"}
    status, body = client.call("start", "POST", "/instances", "clerk", start)
    if status != 201:
        return
    tasks, rounds = body["tasks"], 0
    while tasks:
        task = tasks[0]
        if task["element_id"] == "prepare_documents":
            client.call("claim", "POST", f"/tasks/{task['id']}/claim", "clerk")
            tasks = client.complete(task["id"], "clerk", {"invoice_number": f"INV-{n}-{rounds}"})
        else:
            rounds += 1
            ok = rounds > 1 or random.random() > 1 / 3
            tasks = client.complete(task["id"], "checker", {"documents_ok": ok})


def collection(client: Client, n: str) -> None:
    key = f"SO-{n}"
    start = {"definition": "payment_collection", "business_key": key}
    status, body = client.call("start", "POST", "/instances", "cashier", start)
    if status != 201:
        return
    [invoice] = body["tasks"]
    client.complete(invoice["id"], "cashier", {"invoice_amount": 100.0, "currency": "USD"})
    client.call("message", "POST", "/messages", "bank",
                {"name": "payment_received", "business_key": key,
                 "variables": {"amount_received": 100.0}})  # fmt: skip
    status, body = client.call("inbox", "GET", f"/tasks?business_key={key}", "cashier")
    for task in (body or {}).get("items", []):
        if task["element_id"] == "write_off":
            client.complete(task["id"], "cashier", {"fx_rate": 7.1})


def wait(client: Client, n: str) -> None:
    status, body = client.call("start", "POST", "/instances", "cashier",
                               {"definition": "soak_wait", "business_key": f"W-{n}"})  # fmt: skip
    if status == 201:
        with client.log.lock:
            client.log.waits.append(int(body["id"]))


def finish_waits(client: Client) -> None:
    """Complete the tasks that fired timers led to."""
    status, body = client.call("inbox", "GET", "/tasks?limit=20", "cashier")
    for task in (body or {}).get("items", []):
        if task["element_id"] == "after_wait":
            status, _ = client.call("complete", "POST", f"/tasks/{task['id']}/complete",
                                    "cashier", {"data": {}})  # fmt: skip
            if status == 200:
                with client.log.lock:
                    client.log.completed.append(task["id"])


def race(clients: list[Client], n: str) -> None:
    """Two clients claim one open task at once."""
    start = {"definition": "document_review", "business_key": f"RC-{n}"}
    status, body = clients[0].call("start", "POST", "/instances", "clerk", start)
    if status != 201:
        return
    task_id = body["tasks"][0]["id"]
    results: list[int] = []
    barrier = threading.Barrier(2)

    def claim(client: Client, user: str) -> None:
        barrier.wait()
        results.append(client.call("race-claim", "POST", f"/tasks/{task_id}/claim", user)[0])

    threads = [
        threading.Thread(target=claim, args=(c, u))
        for c, u in zip(clients, ("clerk", "clerk2"), strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if sorted(results) != [200, 409]:  # one takes it, the other is told it is taken
        with clients[0].log.lock:
            clients[0].log.problems.append(f"race on {task_id}: {results}")


def drive(port: int, tokens: dict[str, str], log: Log, until: float, seed: int) -> None:
    random.seed(seed)
    client, spare = Client(port, tokens, log), Client(port, tokens, log)
    n = 0
    while time.monotonic() < until:
        n += 1
        work = random.random()
        tag = f"{seed}-{n}"
        if work < 0.45:
            review(client, tag)
        elif work < 0.75:
            collection(client, tag)
        elif work < 0.9:
            wait(client, tag)
            finish_waits(client)
        else:
            race([client, spare], tag)


def check(flow: Tradeflow, log: Log) -> list[str]:
    """What must hold of the database afterwards; the list of what did not."""
    failures: list[str] = []
    with flow.db.reading() as session:
        tasks = {t.id: t for t in session.scalars(select(HumanTask))}
        lost = [t for t in log.completed if tasks[t].state != TaskState.COMPLETED]
        if lost:
            failures.append(f"{len(lost)} acknowledged completions not completed: {lost[:5]}")
        audited = Counter(
            e.data["task_id"]
            for e in session.scalars(select(AuditEvent).where(AuditEvent.kind == "task_completed"))
        )
        twice = [t for t, n in audited.items() if n != 1]
        if twice:
            failures.append(f"tasks completed more than once in the trail: {twice[:5]}")
        if set(audited) != {t.id for t in tasks.values() if t.state == TaskState.COMPLETED}:
            failures.append("completed rows and task_completed events disagree")
        for instance in session.scalars(
            select(Instance).where(Instance.status == InstanceStatus.RUNNING)
        ):
            workflow = flow.runtime.load(session, instance)
            ready = {
                t.internal_data.get(ROW)
                for t in workflow.get_tasks()
                if t.task_spec.manual and t.state == SpiffState.READY
            }
            rows = {
                t.id
                for t in tasks.values()
                if t.instance_id == instance.id and t.state == TaskState.OPEN
            }
            if ready != rows:
                failures.append(f"instance {instance.id}: rows {rows} != workflow {ready}")
        fired = Counter(
            e.instance_id
            for e in session.scalars(select(AuditEvent).where(AuditEvent.kind == "timer_fired"))
        )
        due = session.scalars(
            select(Instance.id).where(
                Instance.id.in_(log.waits),
                Instance.status == InstanceStatus.RUNNING,
                Instance.next_wakeup_at.is_not(None),
            )
        ).all()
        if [i for i in log.waits if fired.get(i, 0) > 1]:
            failures.append("a timer fired twice")
        if due and any(i not in fired for i in due):
            failures.append(f"{len(due)} waits still pending after the run")
        streams = session.scalars(select(AuditEvent.stream).distinct()).all()
    broken = [s for s in streams if not flow.verify(s).ok]
    if broken:
        failures.append(f"audit chains that do not verify: {broken[:5]}")
    if any(status >= 500 for (_, status) in log.statuses):
        failures.append("5xx answers")
    if log.problems:
        failures.append(f"{len(log.problems)} problems, first: {log.problems[:3]}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=3)
    add_pg_url(parser)
    args = parse(parser, argv, {"seconds": 5, "clients": 4, "workers": 1})
    log = Log()
    with postgres(args.pg_url, DATABASE) as url:
        if url is None:
            return 1
        wait_file = ROOT / "var" / "soak_wait.bpmn"
        wait_file.parent.mkdir(exist_ok=True)
        wait_file.write_bytes(WAIT)
        tokens = prepare(url, USERS, extra=[wait_file])
        print(
            f"soak: {args.workers} server processes on PostgreSQL, {args.clients} clients,"
            f" {args.seconds:.0f} s of mixed work",
            flush=True,
        )
        began = time.perf_counter()
        with server(url, args.workers, 1, ROOT / "var" / "soak-server.log") as (port, _):
            until = time.monotonic() + args.seconds
            threads = [
                threading.Thread(target=drive, args=(port, tokens, log, until, seed))
                for seed in range(args.clients)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            time.sleep(7)  # the last waits' timers fall due and fire
            finisher = Client(port, tokens, log)
            for _ in range(10):
                finish_waits(finisher)
        took = time.perf_counter() - began
        flow = Tradeflow(Database(url))
        failures = check(flow, log)
        flow.db.dispose()
    total = sum(log.statuses.values())
    print(f"  {total:,} requests in {took:.0f} s ({total / took:.0f}/s); by operation:")
    table = Table(
        Column("operation", 11, left=True),
        Column("count", 7, ",d"),
        Column("ms p50", 7, ".1f"),
        Column("ms p95", 7, ".1f"),
        Column("answers", 7, left=True),
        indent="    ",
    )
    table.print_header()
    for op in sorted(log.seconds):
        answers = {s: n for (o, s), n in log.statuses.items() if o == op}
        times = log.seconds[op]
        table.print_row(
            op,
            sum(answers.values()),
            1000 * percentile(times, 0.5),
            1000 * percentile(times, 0.95),
            str(dict(sorted(answers.items()))),
        )
    print(f"  completions acknowledged: {len(log.completed):,}; waits started: {len(log.waits):,}")
    if failures:
        print("  FAILED:")
        for failure in failures:
            print(f"    - {failure}")
        return 1
    print(
        "  held: no 5xx, every acknowledged completion there once, rows match workflows,"
        " every audit chain verifies, every timer fired once"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

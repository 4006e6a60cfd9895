"""A message correlated by values, with many instances waiting: what finding and
delivering it costs as the number of waiting instances grows.

Each waiting instance is a ``payment_collection`` whose invoice is issued (an amount of
its own), waiting for ``payment_received``. A message correlated by ``invoice_amount``
and ``currency`` goes to one of them: Tradeflow finds it through the index of
subscription keys (storage/subscriptions.py). Bare SpiffWorkflow, with no index, does
the same work the only way it can: load each waiting workflow, compare its variables,
deliver to the match and save it, its states held in a dict (no database: a floor for
it). Each row is the median over ``--messages`` messages, each to another
instance, with the database's statistics up to date (ANALYZE after each fill, as
PostgreSQL's autovacuum does within a minute: with statistics still empty, the lookup
reads every row of the commonest key, about 1.6 ms per 3,000 waiting).

    .venv/bin/python -m bench.correlation [--quick] [--waiting 100,1000,5000]
                                          [--messages 15] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from functools import partial
from pathlib import Path
from typing import Any

from SpiffWorkflow.bpmn import BpmnEvent, BpmnWorkflow
from SpiffWorkflow.util.task import TaskState as SpiffState

from bench.bare import parsed, serializer
from bench.harness import Column, Table, parse, timed
from bench.stores import add_pg_url, databases
from cli.demo import shipped_files
from engine.clock import SystemClock
from engine.execution import SAFE_ENGINE
from engine.modeling import messages_of
from engine.storage import Database, TaskState, upgrade
from engine.tradeflow import Tradeflow

DIAGRAM = Path(__file__).resolve().parent.parent / "bpmn" / "payment_collection.bpmn"
MESSAGE = "payment_received"


def amount(n: int) -> float:
    return 1000.0 + n


class BareWaiting:
    """Bare SpiffWorkflow's waiting workflows, as serialized states in a dict."""

    def __init__(self) -> None:
        self.spec, self.subs = parsed(DIAGRAM, "payment_collection")
        self.serializer = serializer()
        self.states: list[str] = []

    def add(self, count: int) -> None:
        for n in range(len(self.states), len(self.states) + count):
            workflow = BpmnWorkflow(self.spec, self.subs, script_engine=SAFE_ENGINE)
            workflow.do_engine_steps()
            [task] = workflow.get_tasks(state=SpiffState.READY, manual=True)
            task.data.update({"invoice_amount": amount(n), "currency": "USD"})
            task.run()
            workflow.do_engine_steps()
            self.states.append(self.serializer.serialize_json(workflow))

    def correlate(self, values: dict[str, Any]) -> int:
        """Load each state, compare, deliver to the one that matches; its index."""
        found = []
        for index, state in enumerate(self.states):
            workflow = self.serializer.deserialize_json(state)
            workflow.script_engine = SAFE_ENGINE  # the diagram's expressions use get()
            for task in workflow.get_tasks(state=SpiffState.WAITING):
                catches = [d for d in messages_of(task.task_spec) if d.name == MESSAGE]
                if catches and all(task.data.get(k) == v for k, v in values.items()):
                    found.append((index, workflow, task, catches[0]))
                    break
        [(index, workflow, task, catch)] = found
        payload = {"amount_received": values["invoice_amount"]}
        task.data.update(payload)  # as delivery merges it into the catching task
        workflow.send_event(BpmnEvent(catch, {"payload": payload}))
        workflow.do_engine_steps()
        self.states[index] = self.serializer.serialize_json(workflow)
        return index


def waiting(flow: Tradeflow, first: int, count: int) -> None:
    for n in range(first, first + count):
        iid = flow.start("payment_collection", actor="cashier", business_key=f"SO-{n}")
        [task] = [t for t in flow.tasks_of(iid) if t.state == TaskState.OPEN]
        data = {"invoice_amount": amount(n), "currency": "USD"}
        flow.complete(task.id, actor="cashier", data=data)


def send(flow: Tradeflow, values: dict[str, Any]) -> Any:
    return flow.correlate(
        MESSAGE,
        actor="bank",
        correlation=values,
        variables={"amount_received": values["invoice_amount"]},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--waiting", default="100,1000,5000", help="instances waiting")
    parser.add_argument("--messages", type=int, default=15, help="messages per size")
    add_pg_url(parser)
    args = parse(parser, argv, {"waiting": "20,100", "messages": 3})
    sizes = sorted(int(n) for n in args.waiting.split(","))
    table = Table(
        Column("store", 11, "s"),
        Column("waiting", 8, ",d"),
        Column("ms", 8, ".1f"),
        Column("bare ms", 9, ".1f"),
        Column("/ bare", 7, ".3f"),
        indent="",
    )
    table.print_header()
    for store, url in databases("correlation", args.pg_url):
        db = Database(url)
        upgrade(db)
        flow = Tradeflow(db, SystemClock())
        flow.deploy(shipped_files(), actor="owner")
        flow.add_user("cashier", ["finance"])
        flow.add_user("bank", ["finance"])
        bare = BareWaiting()
        made, sent = 0, 0
        for size in sizes:
            waiting(flow, made, size - made)
            bare.add(size - made)
            made = size
            with db.engine.begin() as conn:  # statistics, as autovacuum keeps them
                conn.exec_driver_sql("ANALYZE")
            ours, theirs = [], []
            for _ in range(args.messages):
                # each message to another instance, one not paid yet, on both sides
                values = {"invoice_amount": amount(sent), "currency": "USD"}
                sent += 1
                result, seconds = timed(partial(send, flow, values))
                if result.instance_id is None:
                    print(f"message {values} was not delivered")
                    return 1
                ours.append(seconds)
                theirs.append(timed(partial(bare.correlate, values))[1])
            mine, base = statistics.median(ours), statistics.median(theirs)
            table.print_row(store, size, mine * 1000, base * 1000, mine / base)
            waiting(flow, made, 0)
        db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())

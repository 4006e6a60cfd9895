"""What one step of a long-lived instance costs as its steps go on: the curve of
completion time against steps taken, incremental saves against whole ones.

One instance loops on a user task ("record", then round again), its order of
``--lines`` lines (about 110 bytes each) set at the start and never changed, a small
note changed at each step. Two such instances run side by side on one database, their
steps alternating: one saved as served (its large variables apart, written once:
``state_parts``), one saved whole at every step, as before incremental saves
(``StateSerializer.apart`` off). Bare SpiffWorkflow runs the same loop, its state
serialized whole into a SQLite row at every step (bench/bare.py's ``StateTable``); it
keeps every task it ran, so its steps grow with the steps taken, and past about 330
rounds its task iterator's depth limit stops the loop (FIELD-NOTES.md), so it is
measured up to there.

Each row: the median of the last ``--window`` steps before the checkpoint, and the
bytes each save wrote (the state, and the parts written in that step).

    .venv/bin/python -m bench.step_curve [--quick] [--checkpoints 1,10,100,300,1000]
                                         [--lines 1500] [--window 5] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.util.task import TaskState as SpiffState
from sqlalchemy import func, select

from bench.bare import StateTable, serializer
from bench.harness import Column, Table, parse, timed
from bench.stores import add_pg_url, databases
from engine.clock import SystemClock
from engine.storage import Database, StatePart, TaskState, upgrade
from engine.tradeflow import Tradeflow

PROCESS = "order_loop"
XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions '
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="d_loop" '
    'targetNamespace="http://bpmn.io/schema/bpmn">'
    f'<bpmn:process id="{PROCESS}" isExecutable="true">'
    '<bpmn:startEvent id="s"/>'
    '<bpmn:userTask id="record" camunda:candidateGroups="finance"/>'
    '<bpmn:exclusiveGateway id="g" default="g_e"/><bpmn:endEvent id="e"/>'
    '<bpmn:sequenceFlow id="s_r" sourceRef="s" targetRef="record"/>'
    '<bpmn:sequenceFlow id="r_g" sourceRef="record" targetRef="g"/>'
    '<bpmn:sequenceFlow id="g_r" sourceRef="g" targetRef="record">'
    '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">more'
    "</bpmn:conditionExpression></bpmn:sequenceFlow>"
    '<bpmn:sequenceFlow id="g_e" sourceRef="g" targetRef="e"/>'
    "</bpmn:process></bpmn:definitions>"
)
BARE_MAX = 300  # rounds: past about 330, Spiff's task iterator stops the loop


def order(lines: int) -> list[dict[str, Any]]:
    return [
        {"sku": f"SKU-{n:05d}", "text": "Hex bolt M8x40 DIN 933, zinc plated", "qty": n}
        for n in range(lines)
    ]


class BareLoop:
    def __init__(self, folder: Path, lines: list[dict[str, Any]]) -> None:
        parser = CamundaParser()
        parser.add_bpmn_str(XML.encode())
        workflow = BpmnWorkflow(parser.get_spec(PROCESS), {})
        workflow.data.update({"lines": lines})
        workflow.do_engine_steps()
        self.serializer = serializer()
        self.table = StateTable(folder / "bare.db")
        self.table.insert(1, self.serializer.serialize_json(workflow))
        self.bytes = 0

    def step(self, note: str) -> None:
        workflow = self.serializer.deserialize_json(self.table.begin(1))
        [task] = workflow.get_tasks(state=SpiffState.READY, manual=True)
        task.data.update({"note": note, "more": True})
        task.run()
        workflow.do_engine_steps()
        state = self.serializer.serialize_json(workflow)
        self.bytes = len(state)
        self.table.commit(1, state)


class Loop:
    """One instance of the loop on a Tradeflow of its own (sharing the database)."""

    def __init__(self, db: Database, apart: bool, lines: list[dict[str, Any]]) -> None:
        self.flow = Tradeflow(db, SystemClock())
        self.flow.runtime.serializer.apart = apart
        self.iid = self.flow.start(PROCESS, actor="clerk", variables={"lines": lines})

    def step(self, note: str) -> float:
        [task] = [t for t in self.flow.tasks_of(self.iid) if t.state == TaskState.OPEN]
        data = {"note": note, "more": True}
        return timed(lambda: self.flow.complete(task.id, actor="clerk", data=data))[1]

    def written(self) -> tuple[int, int]:
        """(the state's bytes, the parts' bytes stored)."""
        with self.flow.db.reading() as session:
            state = len(self.flow.instance(self.iid).state)
            stored = session.scalar(
                select(func.coalesce(func.sum(func.length(StatePart.body)), 0)).where(
                    StatePart.instance_id == self.iid
                )
            )
        return state, int(stored or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--checkpoints", default="1,10,100,300,1000")
    parser.add_argument("--lines", type=int, default=1500, help="lines of the order")
    parser.add_argument("--window", type=int, default=5, help="steps per checkpoint")
    add_pg_url(parser)
    args = parse(parser, argv, {"checkpoints": "1,10,30", "lines": 200, "window": 3})
    checkpoints = sorted(int(c) for c in args.checkpoints.split(","))
    lines = order(args.lines)
    table = Table(
        Column("store", 11, "s"),
        Column("step", 6, "d"),
        Column("apart ms", 9, ".2f"),
        Column("whole ms", 9, ".2f"),
        Column("bare ms", 8, ".2f"),
        Column("apart/bare", 10, ".3f"),
        Column("whole/bare", 10, ".3f"),
        Column("state B", 8, ",d"),
        Column("whole B", 9, ",d"),
        Column("bare B", 10, ",d"),
        indent="",
    )
    table.print_header()
    for store, url in databases("step_curve", args.pg_url):
        db = Database(url)
        upgrade(db)
        owner = Tradeflow(db, SystemClock())
        owner.deploy([(f"{PROCESS}.bpmn", XML.encode())], actor="owner")
        owner.add_user("clerk", ["finance"])
        apart, whole = Loop(db, True, lines), Loop(db, False, lines)
        with tempfile.TemporaryDirectory() as folder:
            bare = BareLoop(Path(folder), lines)
            times: dict[str, list[float]] = {"apart": [], "whole": [], "bare": []}
            for done in range(1, checkpoints[-1] + 1):
                note = f"round {done}"
                pair = (apart, whole) if done % 2 else (whole, apart)
                for loop in pair:
                    times["apart" if loop is apart else "whole"].append(loop.step(note))
                if done <= BARE_MAX:
                    times["bare"].append(timed(partial(bare.step, note))[1])
                if done in checkpoints:
                    ms = {k: statistics.median(v[-args.window :]) * 1000 for k, v in times.items()}
                    measured = done <= BARE_MAX
                    state, _ = apart.written()
                    whole_state, _ = whole.written()
                    table.print_row(
                        store,
                        done,
                        ms["apart"],
                        ms["whole"],
                        ms["bare"] if measured else float("nan"),
                        ms["apart"] / ms["bare"] if measured else float("nan"),
                        ms["whole"] / ms["bare"] if measured else float("nan"),
                        state,
                        whole_state,
                        bare.bytes if measured else 0,
                    )
            bare.table.close()
        db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())

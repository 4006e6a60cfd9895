"""The work the completion benchmarks do, and bare SpiffWorkflow doing it: the baseline
every figure is reported against.

The work: user-task completions through the shipped ``document_review`` diagram. Per
instance, prepare (clerk) and review (checker) alternate, the review sends the documents
back a few times and then accepts them, and a new instance starts as the last one ends.

Bare SpiffWorkflow does what a service without our engine would do per request: read the
state row from a SQLite file, deserialise the JSON (spec embedded, Spiff's default), find
the READY user task, update its data, run it, run the engine steps, serialise, write the
row, commit (``StateTable``: WAL and synchronous NORMAL, as ours).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.camunda.serializer import DEFAULT_CONFIG
from SpiffWorkflow.util.task import TaskState as SpiffState

from bench.harness import ROOT, Stopwatch

PROCESS = "document_review"
DIAGRAM = ROOT / "bpmn" / "document_review.bpmn"
RETURNS = 4  # reviews that send the documents back before one accepts them
PER_INSTANCE = 2 * (RETURNS + 1)  # completions per instance: 10


@dataclass(frozen=True)
class Step:
    """One completion: which instance (by ordinal), which task, by whom, with what."""

    instance: int
    element: str
    actor: str
    data: dict[str, Any]


def workload() -> Iterator[Step]:
    """The endless, deterministic sequence of completions every side performs."""
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


def serializer() -> BpmnWorkflowSerializer:
    """Spiff's serializer as shipped (spec embedded in every state)."""
    return BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(DEFAULT_CONFIG))


def parsed(diagram: Path, process: str) -> tuple[Any, Any]:
    """(spec, subprocess specs) of ``process`` in the diagram file, by Spiff's parser."""
    parser = CamundaParser()
    parser.add_bpmn_file(str(diagram))
    return parser.get_spec(process), parser.get_subprocess_specs(process)


class StateTable:
    """Workflow states in the rows of a SQLite file, one transaction a load-and-save."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("DROP TABLE IF EXISTS state")
        self.db.execute("CREATE TABLE state (id INTEGER PRIMARY KEY, json TEXT NOT NULL)")

    def insert(self, key: int, state: str) -> None:
        self.db.execute("INSERT INTO state (id, json) VALUES (?, ?)", (key, state))

    def begin(self, key: int) -> str:
        """Take the writer lock and read the state: the start of a load-complete-save."""
        self.db.execute("BEGIN IMMEDIATE")
        row = self.db.execute("SELECT json FROM state WHERE id = ?", (key,)).fetchone()
        return str(row[0])

    def commit(self, key: int, state: str) -> None:
        """Write the state and commit: the end of a load-complete-save."""
        self.db.execute("UPDATE state SET json = ? WHERE id = ?", (state, key))
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()


class Bare:
    """Bare SpiffWorkflow performing the workload: per completion, load the state,
    complete the task, save it.

    ``directory`` given: the states live in a SQLite file there (``StateTable``). None:
    in a dict (no database at all).
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.spec, self.subprocess_specs = parsed(DIAGRAM, PROCESS)
        self.serializer = serializer()
        self.states: dict[int, str] = {}
        self.table = StateTable(directory / "bare.db") if directory is not None else None
        self.steps = workload()
        self.finished = 0

    def _start(self, ordinal: int) -> None:
        workflow = BpmnWorkflow(self.spec, self.subprocess_specs)
        workflow.do_engine_steps()
        state = self.serializer.serialize_json(workflow)
        self.states[ordinal] = state
        if self.table is not None:
            self.table.insert(ordinal, state)

    def _load(self, ordinal: int) -> str:
        return self.states[ordinal] if self.table is None else self.table.begin(ordinal)

    def _save(self, ordinal: int, state: str) -> None:
        if self.table is None:
            self.states[ordinal] = state
        else:
            self.table.commit(ordinal, state)

    def run(self, count: int) -> float:
        """Perform the next ``count`` completions; seconds spent in load-complete-save."""
        watch = Stopwatch()
        for _ in range(count):
            step = next(self.steps)
            if step.instance not in self.states:
                self._start(step.instance)
            with watch:
                workflow = self.serializer.deserialize_json(self._load(step.instance))
                task = workflow.get_tasks(state=SpiffState.READY, manual=True)[0]
                task.data.update(step.data)
                task.run()
                workflow.do_engine_steps()
                self._save(step.instance, self.serializer.serialize_json(workflow))
            if task.task_spec.bpmn_id != step.element:
                raise AssertionError(f"bare: expected {step.element}, ran {task.task_spec.bpmn_id}")
            if workflow.completed:
                self.finished += 1
        return watch.wall

    def close(self) -> None:
        if self.table is not None:
            self.table.close()

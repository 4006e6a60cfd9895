"""Scenario helpers that read like the diagrams: complete("review_documents", by=checker)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.runtime import LiveWorkflows
from engine.storage import Database, HumanTask, TaskState, Writes
from engine.tradeflow import Tradeflow
from tests.conftest import ROOT, FakeClock

FIXTURES = ROOT / "tests" / "fixtures"
# The engine and API tests pin small diagrams whose every element they know: the shipped
# document_review and its forms, and earlier, smaller versions of shipped processes kept in
# tests/fixtures (the shipped department processes have their own tests in tests/content).
FIXTURE_FILES = [
    "credit_check.bpmn",
    "document_review.bpmn",
    "order_fulfilment.bpmn",
    "payment_collection.bpmn",
    "customer_grade.dmn",
    "issue_invoice.form",
    "prepare_documents.form",
    "review_documents.form",
    "write_off.form",
]


def fixture_files() -> list[tuple[str, bytes]]:
    return [read(name) for name in FIXTURE_FILES]


def undecidable_review(flow: Tradeflow) -> None:
    """Deploy a document_review whose gateway reads a variable no form sets: completing
    the review then fails in the engine (a diagram error, not a form error)."""
    name, xml = read("document_review.bpmn")
    xml = xml.replace(b"documents_ok == True", b"verdict == True")
    xml = xml.replace(b"documents_ok == False", b"verdict == False")
    flow.deploy([(name, xml)], actor="owner")


def read(name: str) -> tuple[str, bytes]:
    """A fixture by file name: tests/fixtures first, then the shipped bpmn/ and forms/."""
    folder = next(p for p in (FIXTURES, ROOT / "bpmn", ROOT / "forms") if (p / name).exists())
    return name, (folder / name).read_bytes()


PEOPLE = {
    "clerk": ["documents_logistics"],
    "clerk2": ["documents_logistics"],
    "checker": ["risk_compliance"],
    "allrounder": ["documents_logistics", "risk_compliance"],
    "cashier": ["finance"],
    "boss": ["manager"],
    "sales": ["order_execution"],
}


class Scenario:
    """A Tradeflow with the shipped diagrams deployed and the department's people."""

    def __init__(self, flow: Tradeflow) -> None:
        self.flow = flow

    def open_task(self, instance_id: int, element_id: str) -> HumanTask:
        found = [
            t
            for t in self.flow.tasks_of(instance_id)
            if t.element_id == element_id and t.state == TaskState.OPEN
        ]
        assert len(found) == 1, f"expected one open {element_id}, got {found}"
        return found[0]

    def open_elements(self, instance_id: int) -> list[str]:
        return sorted(
            t.element_id for t in self.flow.tasks_of(instance_id) if t.state == TaskState.OPEN
        )

    def complete(self, instance_id: int, element_id: str, by: str, **data: Any) -> HumanTask:
        task = self.open_task(instance_id, element_id)
        self.flow.complete(task.id, actor=by, data=data)
        return task

    def kinds(self, instance_id: int) -> list[str]:
        return [e.kind for e in self.flow.history(instance_id)]


@pytest.fixture
def flow(db: Database, clock: FakeClock) -> Tradeflow:
    """With the live-workflow cache off, every command restores its workflow from the
    database: each scenario saves and restores at every step (test_caches turns it on)."""
    tf = Tradeflow(db, clock)
    tf.runtime.live = LiveWorkflows(size=0)
    tf.deploy(fixture_files(), actor="owner")
    for name, roles in PEOPLE.items():
        tf.add_user(name, roles)
    return tf


@pytest.fixture
def scenario(flow: Tradeflow) -> Scenario:
    return Scenario(flow)


__all__ = ["Path", "Scenario", "fixture_files", "read", "undecidable_review"]


def hold_after_flush(
    monkeypatch: pytest.MonkeyPatch, picks: Callable[[Writes], bool]
) -> tuple[threading.Event, threading.Event]:
    """Hold the first unit whose flush ``picks`` right after its writes went out, before
    its commit, until ``go`` is set; ``flushed`` says it is held. PostgreSQL only: on
    SQLite the held unit keeps every other writer out."""
    flushed, go = threading.Event(), threading.Event()
    real = Writes.flush
    held: list[bool] = []

    def flush(self: Writes) -> None:
        chosen = not held and picks(self)  # as the writes stand before they go out
        real(self)
        if chosen:
            held.append(True)
            flushed.set()
            go.wait(20)

    monkeypatch.setattr(Writes, "flush", flush)
    return flushed, go


def in_thread(name: str) -> Callable[[Writes], bool]:
    return lambda writes: threading.current_thread().name == name

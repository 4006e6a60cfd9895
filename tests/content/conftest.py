"""The department's shipped processes, run as its people would: the files in bpmn/ and
forms/ deployed as they ship, one person per role, a clock that tests move by hand.

The live-workflow cache is off, so every step saves the instance and the next restores it
from the database: each scenario saves and restores at every step. Timers run on
SpiffWorkflow's own clock, which time-machine moves together with the engine's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine

from cli.demo import SAMPLES, shipped_files
from engine.people import Flags
from engine.runtime import LiveWorkflows
from engine.storage import Database, InstanceStatus, TaskState
from engine.tradeflow import Tradeflow
from tests.conftest import FakeClock

# one person per role; the names say what they do
PEOPLE = {
    "sales": ["market_development"],
    "boss": ["manager"],
    "ops": ["order_execution"],
    "factory": ["production"],
    "qc": ["quality"],
    "docs": ["documents_logistics"],
    "risk": ["risk_compliance"],
    "cashier": ["finance"],
}


# what each form asks for, filled in as its people would (the demo's; tests override fields)
QUOTE = SAMPLES["prepare_quotation"]
SEND = SAMPLES["send_quotation"]
DRAFT = SAMPLES["draft_contract"]
CLEARED = SAMPLES["review_contract"]
SIGN = SAMPLES["sign_contract"]
PLAN = SAMPLES["coordinate_production"]
PRODUCED = SAMPLES["produce_order"]
PASSED = SAMPLES["inspect_goods"]
FAILED = {**PASSED, "inspection_result": "fail", "defects": "Burrs on housings"}
REWORKED = SAMPLES["rework_goods"]
BOOKED = SAMPLES["book_shipment"]
PREPARED = SAMPLES["prepare_documents"]
DECLARED = SAMPLES["declare_customs"]
INVOICE = SAMPLES["issue_invoice"]
SETTLED = SAMPLES["write_off"]


class Trade:
    """The shipped processes on a fresh database, with verbs that read like the diagrams."""

    def __init__(self, flow: Tradeflow, clock: FakeClock, traveller: Any) -> None:
        self.flow = flow
        self.clock = clock
        self.traveller = traveller

    def start(self, key: str, business_key: str, by: str = "sales", **variables: Any) -> int:
        return self.flow.start(key, actor=by, business_key=business_key, variables=variables)

    def open(self, instance_id: int) -> list[str]:
        """The elements of the instance's open tasks, sorted."""
        return sorted(
            t.element_id for t in self.flow.tasks_of(instance_id) if t.state == TaskState.OPEN
        )

    def do(self, instance_id: int, element: str, by: str, **data: Any) -> None:
        """Complete the instance's one open task at ``element`` with the form's data."""
        found = [
            t
            for t in self.flow.tasks_of(instance_id)
            if t.element_id == element and t.state == TaskState.OPEN
        ]
        assert len(found) == 1, f"expected one open {element}, open: {self.open(instance_id)}"
        self.flow.complete(found[0].id, actor=by, data=data)

    def wait(self, instance_id: int, **delta: float) -> list[str]:
        """Let time pass (both clocks), then fire what fell due; the elements that fired."""
        self.clock.advance(**delta)
        self.traveller.shift(timedelta(**delta))
        return self.flow.wake(instance_id)

    def send(self, name: str, business_key: str, by: str = "bank", **variables: Any) -> int | None:
        """A message from outside; the instance it reached (None: kept for later)."""
        found = self.flow.correlate(name, actor=by, business_key=business_key, variables=variables)
        return found.instance_id

    def status(self, instance_id: int) -> InstanceStatus:
        return self.flow.instance(instance_id).status

    def variables(self, instance_id: int) -> dict[str, Any]:
        return self.flow.variables(instance_id)

    def kinds(self, instance_id: int) -> list[str]:
        return [e.kind for e in self.flow.history(instance_id)]

    def fired(self, instance_id: int) -> list[str]:
        """The elements whose timers fired, in order (the audit trail's record)."""
        return [
            str(e.element_id) for e in self.flow.history(instance_id) if e.kind == "timer_fired"
        ]


@pytest.fixture
def trade(db: Database, clock: FakeClock) -> Iterator[Trade]:
    with time_machine.travel(clock.now(), tick=False) as traveller:
        flow = Tradeflow(db, clock)
        flow.runtime.live = LiveWorkflows(size=0)
        flow.deploy(shipped_files(), actor="owner")
        for name, roles in PEOPLE.items():
            flow.add_user(name, roles)
        flow.add_user("bank", [], Flags(integration=True))
        yield Trade(flow, clock, traveller)

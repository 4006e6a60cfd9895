"""A long-lived loop: what one command costs after many rounds.

The shipped ``customer_development`` follows a grade-A customer up every week: a timer
fires (one command, ``wake``), then the salesperson completes the follow-up (another,
``complete``). Each round adds tasks to the instance's task tree; this measures, at each
checkpoint, the median time of the last few rounds' commands and the saved state's size.

Spiff's timers read the system clock, so time-machine moves it together with the engine's.
The engine runs on a SQLite file, with the live-workflow cache on (as served) or off
(every command deserialises the state: ``--no-live``).

    .venv/bin/python -m bench.long_loop [--quick] [--checkpoints 10,300,3000] [--window 5]
                                        [--no-live]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from datetime import UTC, datetime, timedelta

import time_machine

from bench.harness import Column, Table, parse, timed
from cli.demo import shipped_files
from engine.runtime import LiveWorkflows
from engine.storage import Database, TaskState, upgrade
from engine.tradeflow import Tradeflow

LEAD = {
    "company_name": "Hamburg Tools GmbH",
    "country": "DE",
    "contact_email": "einkauf@hamburg-tools.example",
    "potential": "high",
    "annual_volume": 1_500_000,
    "margin_percent": 20,
    "credit_score": 720,
    "qualified": True,
}
FOLLOW_UP = {"follow_up_channel": "call", "follow_up_notes": "Called", "keep_following": True}


class Clock:
    def __init__(self) -> None:
        self.moment = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--checkpoints", default="10,300,3000")
    parser.add_argument("--window", type=int, default=5, help="rounds measured per checkpoint")
    parser.add_argument("--no-live", action="store_true", help="live-workflow cache off")
    args = parse(parser, argv, {"checkpoints": "5,20", "window": 3})
    checkpoints = sorted(int(c) for c in args.checkpoints.split(","))
    clock = Clock()
    with (
        tempfile.TemporaryDirectory() as folder,
        time_machine.travel(clock.moment, tick=False) as traveller,
    ):
        db = Database(f"sqlite:///{folder}/bench.db")
        upgrade(db)
        flow = Tradeflow(db, clock)
        if args.no_live:
            flow.runtime.live = LiveWorkflows(size=0)
        flow.deploy(shipped_files(), actor="owner")
        flow.add_user("sales", ["market_development"])
        flow.add_user("boss", ["manager"])
        iid = flow.start("customer_development", actor="sales", business_key="L-1")

        def do(element: str, by: str, **data: object) -> float:
            [task] = [
                t
                for t in flow.tasks_of(iid)
                if t.element_id == element and t.state == TaskState.OPEN
            ]
            return timed(lambda: flow.complete(task.id, actor=by, data=data))[1]

        do("screen_lead", "sales", **LEAD)
        do("assign_key_account", "boss", account_manager="Li Wei", service_level="premium")
        do(
            "create_customer_record",
            "sales",
            customer_id="C-1001",
            contact_name="Anna Vogel",
            preferred_currency="EUR",
        )
        wakes: list[float] = []
        completes: list[float] = []
        print(f"live-workflow cache {'off' if args.no_live else 'on'}")
        table = Table(
            Column("round", 6, "d"),
            Column("wake ms", 8, ".2f"),
            Column("complete ms", 12, ".2f"),
            Column("state bytes", 12, ",d"),
            Column("tasks", 6, "d"),
            indent="",
        )
        table.print_header()
        for done in range(1, checkpoints[-1] + 1):
            clock.moment += timedelta(days=7, minutes=1)
            traveller.shift(timedelta(days=7, minutes=1))
            fired, seconds = timed(lambda: flow.wake(iid))
            wakes.append(seconds)
            if fired != ["follow_up_due"]:
                print(f"round {done}: the follow-up timer did not fire (fired: {fired})")
                return 1
            completes.append(do("follow_up_customer", "sales", **FOLLOW_UP))
            if done in checkpoints:
                state = flow.instance(iid).state
                tasks = state.count('"task_spec"')
                wake = statistics.median(wakes[-args.window :]) * 1000
                complete = statistics.median(completes[-args.window :]) * 1000
                table.print_row(done, wake, complete, len(state), tasks)
        db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())

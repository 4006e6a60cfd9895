"""The chaos suite, continued (chaos/test_chaos.py says what every run checks): the
database server itself restarted, the servers' wall clock stepped back and forth, and
readers that ask for a large export and then stall."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from sqlalchemy import select

from chaos.servers import database_on, fake_clock, private_postgres
from chaos.stage import Api, Figures, Stage, staged, work_through
from engine.clock import as_utc
from engine.people.users import Flags
from engine.storage import AuditEvent, InstanceStatus
from tests.diagrams import diagram, seq, timer

READERS = 8  # more than the service's worker threads (2 workers of 2)
TIMER = diagram(
    "short_wait",
    '<bpmn:startEvent id="s"/><bpmn:intermediateCatchEvent id="wait">'
    + timer("timeDuration", "PT2S")
    + '</bpmn:intermediateCatchEvent><bpmn:endEvent id="e"/>'
    + seq("s", "wait")
    + seq("wait", "e"),
)


def test_the_database_server_restarted(capsys: pytest.CaptureFixture[str]) -> None:
    """The PostgreSQL server the service uses is restarted twice, 3 s apart (a server
    of the suite's own: the one the tests share is not touched)."""
    with private_postgres() as server:

        def restart(stage: Stage) -> None:
            for _ in range(2):
                server.restart()
                time.sleep(3)

        with staged(database=database_on(server)) as stage:
            figures = work_through(stage, "database restarted", restart, stage.servers[0][0])
    assert figures.statuses[503] > 0  # the fault was met, and answered 503


def test_readers_that_stall(capsys: pytest.CaptureFixture[str]) -> None:
    """Eight clients ask for the whole trail as XES with a receive window of 4 KB and
    read nothing for 8 s: the service's threads are not theirs to hold."""
    with staged() as stage:
        for n in range(1500):  # a trail worth exporting
            stage.flow.start("document_review", actor="clerk", business_key=f"FILL-{n}")
        _, token = stage.flow.add_user("auditor", [], Flags(auditor=True))
        port = stage.servers[0][0]
        answered: list[bytes] = []

        def stall(stage: Stage) -> None:
            readers = []
            for _ in range(READERS):
                reader = socket.socket()
                reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                reader.connect(("127.0.0.1", port))
                reader.sendall(
                    b"GET /api/v1/audit/export?format=xes HTTP/1.1\r\nHost: chaos\r\n"
                    + f"Authorization: Bearer {token}\r\n\r\n".encode()
                )
                readers.append(reader)
            time.sleep(8)
            for reader in readers:
                reader.settimeout(30)
                answered.append(reader.recv(64))
            whole = b""
            while chunk := readers[0].recv(1 << 20):  # one read to its end: its size
                whole += chunk
                if whole.endswith(b"</log>\n") or whole.endswith(b"</log>"):
                    break
            sizes.append(len(whole))
            for reader in readers:
                reader.close()

        sizes: list[int] = []
        work_through(stage, "stalled readers", stall, port)
    assert all(a.startswith(b"HTTP/1.1 200") for a in answered), answered
    assert sizes[0] > 1_000_000  # far more than the 4 KB window: the rest waited unsent
    print(f"stalled readers: each export {sizes[0]:,} bytes")


def test_the_clock_stepped(capsys: pytest.CaptureFixture[str]) -> None:
    """The servers' wall clock steps back an hour, then forward again, while clients
    work and a 2-second timer waits: the timer fires by the servers' wall time after
    each step, not an hour late, and every stream's events stay in order."""
    with fake_clock() as clock, staged(env=clock.env()) as stage:
        stage.flow.deploy([TIMER], actor="owner")
        timers: list[tuple[int, float]] = []

        def step(stage: Stage) -> None:
            api = Api(stage.servers[0][0], stage.tokens, Figures("clock"))
            for offset in (-3600, 0):
                clock.step(offset)
                time.sleep(1.5)  # libfaketime reads the offset again each second
                status, body = api.call("POST", "/instances", "clerk", {"definition": "short_wait"})
                assert status == 201, body
                timers.append((body["id"], time.monotonic()))
                time.sleep(4)

        work_through(stage, "clock stepped", step, stage.servers[0][0])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ended = [stage.flow.instance(i).status for i, _ in timers]
            if all(s == InstanceStatus.COMPLETED for s in ended):
                break
            time.sleep(0.5)
        assert ended == [InstanceStatus.COMPLETED] * 2, ended
        # the step reached the servers: the first started an hour back by the real clock
        started = as_utc(stage.flow.instance(timers[0][0]).started_at)
        assert timedelta(minutes=55) < datetime.now(UTC) - started < timedelta(minutes=65)
        with stage.flow.db.reading() as session:
            events = session.execute(
                select(AuditEvent.stream, AuditEvent.seq, AuditEvent.at).order_by(
                    AuditEvent.stream, AuditEvent.seq
                )
            ).all()
        backwards = [
            (a.stream, a.seq)
            for a, b in pairwise(events)
            if a.stream == b.stream and as_utc(b.at) < as_utc(a.at)
        ]
        assert backwards == [], backwards[:5]
        print(f"clock stepped: {len(events)} events in order; both timers fired")

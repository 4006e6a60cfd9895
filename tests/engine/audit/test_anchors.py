"""Anchors: the trail's heads written outside the database, and verify holding the trail
against them, whatever the database's owner rewrote meanwhile (the instance heads too)."""

from __future__ import annotations

import hashlib
import json
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from engine.audit import DEFINITIONS_STREAM, GENESIS, anchor_log, anchors, verification
from engine.audit.anchor_log import Record
from engine.audit.anchors import FileTarget, WebhookTarget
from engine.errors import AnchorFailed
from engine.storage import AuditAnchor
from engine.timers.scheduler import Scheduler, Timers
from engine.tradeflow import Tradeflow
from tests.conftest import FakeClock
from tests.engine.audit.test_audit import _reviewed, as_owner, rewrite
from tests.engine.conftest import Scenario


def _anchor(flow: Tradeflow, target: anchors.Target, **options: Any) -> anchors.Anchored:
    done = anchors.anchor(flow.db, flow.clock, target, **options)
    assert done is not None
    return done


def _verify(flow: Tradeflow, path: Path) -> verification.TrailReport:
    log = anchor_log.read_log(path)
    assert log.problems == [] and log.conflicts == []
    with verification.snapshot(flow.db) as session:
        return verification.verify_trail(session, log.pins)


def test_an_anchor_lists_every_head_hashed_together(scenario: Scenario, tmp_path: Path) -> None:
    flow = scenario.flow
    iid = _reviewed(scenario)
    path = tmp_path / "anchors.jsonl"
    done = _anchor(flow, FileTarget(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [line] = path.read_bytes().splitlines()
    body = json.loads(line)
    head = flow.history(iid)[-1]
    definitions = flow.verify(DEFINITIONS_STREAM)
    assert body["heads"] == {
        DEFINITIONS_STREAM: [5, body["heads"][DEFINITIONS_STREAM][1]],  # 4 processes, a decision
        f"instance:{iid}": [14, head.hash],
    }
    assert definitions.recorded_seq == 5
    listing = "".join(
        f"{stream}\t{seq}\t{hash_}\n" for stream, (seq, hash_) in sorted(body["heads"].items())
    )
    assert body["digest"] == hashlib.sha256(listing.encode()).hexdigest()
    assert (body["anchor"], body["prev"], body["full"], body["streams"]) == (1, None, True, 2)
    assert body["at"] == "2026-11-27T09:00:00.000000Z"  # the clock's
    assert done.record == Record.parse(line) and done.warnings == []
    report = _verify(flow, path)
    assert report.ok and report.pinned == 2


def test_an_anchor_catches_a_rewrite_of_the_chain_and_the_instance_head(
    scenario: Scenario, tmp_path: Path
) -> None:
    flow = scenario.flow
    iid = _reviewed(scenario)
    stream = f"instance:{iid}"
    path = tmp_path / "anchors.jsonl"
    _anchor(flow, FileTarget(path))
    _, head = rewrite(flow.db, stream, 6, actor="mallory")
    as_owner(flow.db, ("UPDATE instance SET audit_hash = :h WHERE id = :i", {"h": head, "i": iid}))
    assert flow.verify(stream).ok  # the heads in the database hide it: the anchor does not
    log = anchor_log.read_log(path)
    result = flow.verify(stream, log.pins)
    assert (result.ok, result.broken_seq) == (False, 14)
    assert result.reason is not None and "not the event anchor 1 pinned" in result.reason
    [finding] = _verify(flow, path).findings
    assert (finding.stream, finding.seq) == (stream, 14)


def test_an_anchor_catches_a_cut_and_a_vanished_instance(
    scenario: Scenario, tmp_path: Path
) -> None:
    flow = scenario.flow
    cut, gone = _reviewed(scenario), _reviewed(scenario)
    path = tmp_path / "anchors.jsonl"
    _anchor(flow, FileTarget(path))
    cut_head = flow.history(cut)[11]
    tasks = "SELECT id FROM human_task WHERE instance_id = :i"
    as_owner(
        flow.db,
        ("DELETE FROM audit_event WHERE instance_id = :i AND seq > 12", {"i": cut}),
        (
            "UPDATE instance SET audit_seq = 12, audit_hash = :h WHERE id = :i",
            {"h": cut_head.hash, "i": cut},
        ),
        ("DELETE FROM audit_event WHERE instance_id = :i", {"i": gone}),
        (f"DELETE FROM human_task_role WHERE task_id IN ({tasks})", {"i": gone}),
        ("DELETE FROM human_task WHERE instance_id = :i", {"i": gone}),
        ("DELETE FROM case_facts WHERE instance_id = :i", {"i": gone}),
        ("DELETE FROM instance WHERE id = :i", {"i": gone}),
    )
    assert _verify_without_anchors(flow).ok  # nothing left in the database tells
    assert [str(f) for f in _verify(flow, path).findings] == [
        f"instance:{cut}: broken at seq 13: events cut: anchor 1 pinned seq 14, the trail "
        "ends at seq 12",
        f"instance:{gone}: broken at seq 1: stream missing: anchor 1 pinned it at seq 14",
    ]


def _verify_without_anchors(flow: Tradeflow) -> verification.TrailReport:
    with verification.snapshot(flow.db) as session:
        return verification.verify_trail(session)


def test_a_later_anchor_does_not_launder_a_rewrite(scenario: Scenario, tmp_path: Path) -> None:
    """Anchor, rewrite the chain and the head, anchor again: the second anchor pins the
    forgery, but the first still pins what was there."""
    flow = scenario.flow
    iid = _reviewed(scenario)
    path = tmp_path / "anchors.jsonl"
    _anchor(flow, FileTarget(path))
    _, head = rewrite(flow.db, f"instance:{iid}", 3, actor="mallory")
    as_owner(flow.db, ("UPDATE instance SET audit_hash = :h WHERE id = :i", {"h": head, "i": iid}))
    second = _anchor(flow, FileTarget(path))
    assert second.warnings == [f"instance:{iid}: seq 14 anchored with another hash than it has now"]
    log = anchor_log.read_log(path)
    assert log.conflicts == [(f"instance:{iid}", 14, 1, 2)]
    result = flow.verify(f"instance:{iid}", log.pins)
    assert (result.ok, result.broken_seq) == (False, 14)


def test_later_anchors_list_what_moved_and_add_up(scenario: Scenario, tmp_path: Path) -> None:
    flow = scenario.flow
    _reviewed(scenario)
    path = tmp_path / "anchors.jsonl"
    _anchor(flow, FileTarget(path))
    second = _anchor(flow, FileTarget(path))  # nothing moved
    assert (second.record.full, second.record.heads, second.record.streams) == (False, {}, 2)
    later = flow.start("document_review", actor="clerk", business_key="SO-2")
    scenario.complete(later, "prepare_documents", by="clerk", invoice_number="INV-2")
    flow.clock.advance(hours=1)  # type: ignore[attr-defined]
    third = _anchor(flow, FileTarget(path))
    assert third.record.full is False
    assert set(third.record.heads) == {f"instance:{later}"}
    assert third.record.prev == second.record.digest
    report = _verify(flow, path)
    assert report.ok and report.pinned == 3  # first's head, definitions, later's head
    assert anchor_log.read_log(path).anchors == 3
    # a full one on asking, or when the file is new
    assert _anchor(flow, FileTarget(path), full=True).record.full
    assert _anchor(flow, FileTarget(tmp_path / "new.jsonl")).record.full


def test_an_anchor_file_read_back_says_what_is_wrong_with_it(
    scenario: Scenario, tmp_path: Path
) -> None:
    flow = scenario.flow
    _reviewed(scenario)
    path = tmp_path / "anchors.jsonl"
    for _ in range(3):
        _anchor(flow, FileTarget(path))
        scenario.flow.start("document_review", actor="clerk")
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[2])  # the second is lost
    problems = anchor_log.read_log(path).problems
    assert problems == [
        "anchor 3 (line 2) does not follow anchor 1: its prev is not that one's digest "
        "(anchors missing?)",
        "anchor 3 (line 2): its listing does not add up to its digest (a record before it "
        "is missing or altered)",
    ]
    path.write_bytes(lines[0] + b'{"tradeflow_anchor": 1, "anc')  # a write cut short
    _anchor(flow, FileTarget(path))  # goes on a line of its own, listing every head
    log = anchor_log.read_log(path)
    [problem] = log.problems
    assert problem.startswith("line 2: not an anchor record: ")
    assert log.last is not None and log.last.full and log.last.number == 2


def test_a_webhook_gets_each_anchor_as_json(scenario: Scenario) -> None:
    flow = scenario.flow
    iid = _reviewed(scenario)
    with _receiver() as (url, received, _):
        done = _anchor(flow, WebhookTarget(url + "/anchors?token=secret"))
        assert done.target == url + "/anchors"  # the query (a token) is not shown
        anchors_ = _anchor(flow, WebhookTarget(url + "/anchors"))
    first, second = (Record.parse(body) for _, body in received)
    assert [path for path, _ in received] == ["/anchors?token=secret", "/anchors"]
    assert first.full and first.heads[f"instance:{iid}"][0] == 14
    assert (second.full, second.prev, second.number) == (False, first.digest, 2)
    assert anchors_.record == second


@pytest.mark.parametrize(
    ("status", "reason"),
    [(500, "answered 500"), (302, "answered 302"), (0, "could not be reached")],
)
def test_a_webhook_that_fails_is_reported_and_nothing_is_recorded(
    scenario: Scenario, status: int, reason: str
) -> None:
    flow = scenario.flow
    _reviewed(scenario)
    with _receiver(status=status) as (url, _, _):
        target = WebhookTarget(url, timeout=0.5)
        with pytest.raises(AnchorFailed, match=reason):
            anchors.anchor(flow.db, flow.clock, target)
    with flow.db.reading() as session:
        state = session.get(AuditAnchor, 1)
        assert state is not None and (state.made, state.claimed_until) == (0, None)


def test_anchoring_holds_no_database_lock_while_it_writes(scenario: Scenario) -> None:
    """The webhook's receiver starts an instance while the anchor waits for its answer:
    on SQLite that needs the write lock, which the anchorer must not hold."""
    flow = scenario.flow
    started: list[int] = []
    with _receiver(
        on_post=lambda: started.append(flow.start("document_review", actor="clerk"))
    ) as (
        url,
        _,
        _,
    ):
        _anchor(flow, WebhookTarget(url, timeout=5))
    assert len(started) == 1


def test_one_process_anchors_at_a_time_and_when_due(scenario: Scenario, tmp_path: Path) -> None:
    flow = scenario.flow
    clock: FakeClock = flow.clock  # type: ignore[assignment]
    target = FileTarget(tmp_path / "anchors.jsonl")
    hour = timedelta(hours=1)
    assert anchors._claim(flow.db, clock.now(), None)  # another process is at it
    assert anchors.anchor(flow.db, clock, target, every=hour) is None
    with pytest.raises(AnchorFailed, match="another process is writing an anchor"):
        anchors.anchor(flow.db, clock, target)
    clock.advance(minutes=6)  # it died holding the claim: the claim lapses
    assert _anchor(flow, target, every=hour).record.number == 1
    clock.advance(minutes=59)
    assert anchors.anchor(flow.db, clock, target, every=hour) is None  # not due
    clock.advance(minutes=1)
    assert _anchor(flow, target, every=hour).record.number == 2


def test_the_scheduler_anchors_when_configured(scenario: Scenario, tmp_path: Path) -> None:
    flow = scenario.flow
    path = tmp_path / "anchors.jsonl"
    setting = anchors.configured({anchors.TARGET_ENV: str(path), anchors.EVERY_ENV: "30"})
    assert setting is not None and setting.every == timedelta(minutes=30)
    scheduler = Scheduler(Timers(flow.runtime), anchoring=setting)
    done = scheduler.anchor_due()
    assert done is not None and done.record.number == 1
    assert scheduler.anchor_due() is None  # the next in half an hour
    flow.clock.advance(minutes=30)  # type: ignore[attr-defined]
    assert scheduler.anchor_due() is not None
    assert anchor_log.read_log(path).anchors == 2


def test_a_started_scheduler_anchors_in_the_background(scenario: Scenario, tmp_path: Path) -> None:
    flow = scenario.flow
    path = tmp_path / "anchors.jsonl"
    setting = anchors.configured({anchors.TARGET_ENV: str(path)})
    scheduler = Scheduler(Timers(flow.runtime), sweep_seconds=5, anchoring=setting)
    scheduler.start()  # the anchor job's first look is at once
    try:
        deadline = time.monotonic() + 20
        while _anchors_made(flow) < 1:  # written, and recorded as written
            assert time.monotonic() < deadline, "no anchor within 20 s"
            time.sleep(0.05)
    finally:
        scheduler.shutdown()
    assert anchor_log.read_log(path).anchors == 1


def _anchors_made(flow: Tradeflow) -> int:
    with flow.db.reading() as session:
        state = session.get(AuditAnchor, 1)
        return state.made if state is not None and state.claimed_until is None else 0


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({anchors.TARGET_ENV: "ftp://example.com/a"}, "a file path, or an http"),
        ({anchors.TARGET_ENV: "https:///nohost"}, "names no host"),
        ({anchors.TARGET_ENV: "a.jsonl", anchors.EVERY_ENV: "soon"}, "not a number of minutes"),
        ({anchors.TARGET_ENV: "a.jsonl", anchors.EVERY_ENV: "0"}, "not a number of minutes"),
        ({anchors.TARGET_ENV: "a.jsonl", anchors.EVERY_ENV: "nan"}, "not a number of minutes"),
    ],
)
def test_a_wrong_setting_is_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(AnchorFailed, match=message):
        anchors.configured(environ)


def test_no_setting_no_anchors() -> None:
    assert anchors.configured({}) is None
    setting = anchors.configured({anchors.TARGET_ENV: "https://anchors.example.com/in"})
    assert setting is not None and isinstance(setting.target, WebhookTarget)
    assert setting.every == anchors.DEFAULT_EVERY


def test_genesis_heads_are_not_anchored(scenario: Scenario, tmp_path: Path) -> None:
    flow = scenario.flow
    path = tmp_path / "anchors.jsonl"
    record = _anchor(flow, FileTarget(path)).record
    assert GENESIS not in {h for _, h in record.heads.values()}


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, body))
        if self.server.on_post is not None:
            self.server.on_post()
        status = self.server.status
        if status == 0:  # too slow: the client gives up first
            self.server.release.wait(5)
            status = 200
        self.send_response(status)
        if status == 302:
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class _Receiver(ThreadingHTTPServer):
    received: list[tuple[str, bytes]]
    status: int
    on_post: Callable[[], object] | None
    release: threading.Event


@contextmanager
def _receiver(
    status: int = 200, on_post: Callable[[], object] | None = None
) -> Iterator[tuple[str, list[tuple[str, bytes]], _Receiver]]:
    """A real HTTP server in a thread that keeps what is posted to it."""
    server = _Receiver(("127.0.0.1", 0), _Handler)
    server.received, server.status, server.on_post = [], status, on_post
    server.release = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.received, server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)

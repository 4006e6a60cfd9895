"""Messages and instances racing on PostgreSQL, held at the point of the race: nothing
is lost between a message and an instance coming to wait for it, nothing is booked
twice, and the sweep backs both looks up."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.commands import messages
from engine.storage import Message, MessageStatus, Writes
from tests.engine.commands.test_messages import invoiced
from tests.engine.conftest import Scenario, hold_after_flush, in_thread


@pytest.mark.parametrize(
    "db", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_payment_sent_while_its_invoice_is_issued_is_not_lost(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL runs the completion that brings an instance to its catch event and the
    bank's message side by side, and neither sees the other's rows. Held right there (the
    completion's writes sent, its commit not yet), the message is kept; once the
    completion commits, its unit finds the kept message and hands it over. (SQLite has
    one writer at a time: the two cannot overlap.)"""
    flow = scenario.flow
    iid = flow.start("payment_collection", actor="cashier", business_key="SO-77")
    # the completion: it now waits for the payment
    flushed, go = hold_after_flush(monkeypatch, lambda writes: bool(writes.new_waits))
    errors: list[BaseException] = []

    def issue() -> None:
        try:
            scenario.complete(
                iid, "issue_invoice", by="cashier", invoice_amount=1000.0, currency="USD"
            )
        except BaseException as exc:  # reported below
            errors.append(exc)

    worker = threading.Thread(target=issue)
    worker.start()
    try:
        assert flushed.wait(20), "the completion did not get to its catch event"
        paid = flow.correlate(
            "payment_received",
            actor="bank",
            business_key="SO-77",
            variables={"amount_received": 1000.0, "bank_ref": "TT-77"},
        )
        assert (paid.instance_id, paid.buffered) == (None, True)  # neither saw the other
    finally:
        go.set()
        worker.join(20)
    assert errors == []
    assert scenario.open_elements(iid) == ["write_off"]
    with flow.db.reading() as session:
        message = session.get_one(Message, paid.message_id)
        assert (message.status, message.instance_id) == (MessageStatus.DELIVERED, iid)
    received = [e for e in flow.history(iid) if e.kind == "message_received"]
    assert [(e.actor, e.data["variables"]["bank_ref"]) for e in received] == [("bank", "TT-77")]


def test_the_sweep_hands_over_a_kept_message_both_looks_missed(scenario: Scenario) -> None:
    """The backstop: a kept message that a running instance waits for (as if the looks
    after both commits had failed: a crash between commit and look) goes to it at the
    scheduler's next sweep, and only there; another key's message stays kept."""
    flow = scenario.flow
    iid = invoiced(scenario, "SO-78")  # waits for payment_received
    now = flow.clock.now()
    with flow.db.transaction() as session:
        rows = [
            Message(
                name="payment_received",
                business_key=key,
                correlation={},
                payload={"amount_received": 1000.0},
                status=MessageStatus.BUFFERED,
                sender="bank",
                received_at=now,
                expires_at=now + timedelta(days=1),
            )
            for key in ("SO-78", "SO-79")
        ]
        session.add_all(rows)
        session.flush()
        ours, theirs = rows[0].id, rows[1].id
    assert scenario.open_elements(iid) == []  # nothing looked yet
    assert messages.hand_over_kept(flow.runtime).handed == [iid]
    assert scenario.open_elements(iid) == ["write_off"]
    with flow.db.reading() as session:
        assert session.get_one(Message, ours).status == MessageStatus.DELIVERED
        assert session.get_one(Message, theirs).status == MessageStatus.BUFFERED
    assert messages.hand_over_kept(flow.runtime).handed == []  # nothing more to do
    # a sweep goes on from where the last one stopped, a limit at a time
    assert messages.hand_over_kept(flow.runtime, after=theirs).after == 0


@pytest.mark.parametrize(
    "db", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_one_key_sent_twice_at_once_is_booked_once(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The repeat arrives while the first is still being delivered (not committed): it
    waits on the key's unique index, then finds the first and answers as it did."""
    flow = scenario.flow
    iid = invoiced(scenario, "SO-80")
    flushed, go = hold_after_flush(monkeypatch, in_thread("first"))
    answers: dict[str, messages.Correlation] = {}

    def send(label: str) -> None:
        answers[label] = flow.correlate(
            "payment_received",
            actor="bank",
            business_key="SO-80",
            variables={"amount_received": 1000.0},
            idempotency_key="TT-80",
        )

    def sending(label: str) -> None:
        try:
            send(label)
        except BaseException as exc:  # reported below
            answers_failed.append(exc)

    answers_failed: list[BaseException] = []
    first = threading.Thread(target=sending, args=("first",), name="first")
    second = threading.Thread(target=sending, args=("second",), name="second")
    first.start()
    try:
        assert flushed.wait(20)
        second.start()
        second.join(1)
        assert second.is_alive()  # waiting on the first's key
    finally:
        go.set()
        first.join(20)
        second.join(20)
    assert answers_failed == []
    assert answers["first"] == answers["second"]
    assert (answers["first"].instance_id, answers["first"].buffered) == (iid, False)
    with flow.db.reading() as session:
        rows = session.scalars(select(Message).where(Message.idempotency_key == "TT-80")).all()
    assert len(rows) == 1
    assert [e.kind for e in flow.history(iid)].count("message_received") == 1


@pytest.mark.parametrize(
    "db", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_payment_kept_while_its_invoice_is_issued_goes_to_it_as_it_commits(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other order: the message is being kept (written, not committed) when the
    completion brings the instance to its catch event and commits without seeing it;
    the message's second look, once it has committed, finds the instance."""
    flow = scenario.flow
    iid = flow.start("payment_collection", actor="cashier", business_key="SO-82")
    flushed, go = hold_after_flush(monkeypatch, in_thread("bank"))
    answers: list[messages.Correlation] = []
    failed: list[BaseException] = []

    def pay() -> None:
        try:
            answers.append(
                flow.correlate(
                    "payment_received",
                    actor="bank",
                    business_key="SO-82",
                    variables={"amount_received": 1000.0},
                )
            )
        except BaseException as exc:  # reported below
            failed.append(exc)

    bank = threading.Thread(target=pay, name="bank")
    bank.start()
    try:
        assert flushed.wait(20), "the message was not kept"
        scenario.complete(iid, "issue_invoice", by="cashier", invoice_amount=1000.0, currency="USD")
        assert scenario.open_elements(iid) == []  # it waits: the message is not seen yet
    finally:
        go.set()
        bank.join(20)
    assert failed == []
    [paid] = answers
    assert (paid.instance_id, paid.buffered) == (iid, False)
    assert scenario.open_elements(iid) == ["write_off"]


@pytest.mark.parametrize(
    "db", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_expiry_leaves_a_message_being_handed_over_alone(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kept message handed over just before its expiry, the expiry sweep running while
    that unit commits: the sweep skips it, and it stays delivered (an update by key
    would have written "expired" over "delivered")."""
    flow = scenario.flow
    iid = invoiced(scenario, "SO-83")
    now = flow.clock.now()
    with flow.db.transaction() as session:
        kept = Message(
            name="payment_received",
            business_key="SO-83",
            correlation={},
            payload={"amount_received": 1000.0},
            status=MessageStatus.BUFFERED,
            sender="bank",
            received_at=now,
            expires_at=now + timedelta(minutes=1),
        )
        session.add(kept)
        session.flush()
        message_id = kept.id
    flushed, go = hold_after_flush(monkeypatch, in_thread("sweep"))
    sweep = threading.Thread(target=lambda: messages.hand_over_kept(flow.runtime), name="sweep")
    sweep.start()
    try:
        assert flushed.wait(20)
        flow.clock.advance(minutes=2)
        threading.Timer(1.0, go.set).start()  # an expiry that waited would wait this long
        assert messages.expire(flow.runtime) == []
    finally:
        go.set()
        sweep.join(20)
    with flow.db.reading() as session:
        assert session.get_one(Message, message_id).status == MessageStatus.DELIVERED
    assert scenario.open_elements(iid) == ["write_off"]


@pytest.mark.parametrize(
    "db", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_two_instances_coming_to_one_kept_message_at_once_take_it_once(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A payment kept by its currency; two collections come to wait for it at the same
    moment (PostgreSQL). The one that hands it over holds its row; the other passes it
    by and waits on: the payment is booked once."""
    flow = scenario.flow
    a = flow.start("payment_collection", actor="cashier", business_key="SO-92")
    b = flow.start("payment_collection", actor="cashier", business_key="SO-93")
    kept = flow.correlate(
        "payment_received",
        actor="bank",
        correlation={"currency": "EUR"},
        variables={"amount_received": 10.0},
    )
    assert kept.buffered

    def delivering(writes: Writes) -> bool:
        return threading.current_thread().name == "a" and any(
            e["kind"] == "message_received" for e in writes._events
        )

    flushed, go = hold_after_flush(monkeypatch, delivering)
    failed: list[BaseException] = []

    def issue() -> None:
        try:
            scenario.complete(a, "issue_invoice", by="cashier", invoice_amount=10.0, currency="EUR")
        except BaseException as exc:  # reported below
            failed.append(exc)

    worker = threading.Thread(target=issue, name="a")
    worker.start()
    try:
        assert flushed.wait(20), "a did not take the kept payment"
        scenario.complete(b, "issue_invoice", by="cashier", invoice_amount=10.0, currency="EUR")
        assert scenario.open_elements(b) == []  # passed it by: it waits on
    finally:
        go.set()
        worker.join(20)
    assert failed == []
    assert scenario.open_elements(a) == ["write_off"]
    assert scenario.open_elements(b) == []
    with flow.db.reading() as session:
        message = session.get_one(Message, kept.message_id)
        assert (message.status, message.instance_id) == (MessageStatus.DELIVERED, a)
    assert "message_received" not in scenario.kinds(b)
    assert [e.kind for e in flow.history(a)].count("message_received") == 1


@pytest.mark.parametrize(
    "db", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_payment_sent_while_its_collection_starts_is_kept_for_it(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The start of SO-95's collection is written, not yet committed, when its payment
    comes: the message waits for the start (both take the business key's turn), then
    finds the instance running and is kept for it, not refused as for no instance."""
    flow = scenario.flow
    flushed, go = hold_after_flush(monkeypatch, in_thread("start"))
    started: list[int] = []
    answers: list[messages.Correlation | BaseException] = []

    def start() -> None:
        started.append(flow.start("payment_collection", actor="cashier", business_key="SO-95"))

    def pay() -> None:
        try:
            answers.append(
                flow.correlate(
                    "payment_received",
                    actor="bank",
                    business_key="SO-95",
                    variables={"amount_received": 1000.0},
                )
            )
        except BaseException as exc:  # reported below
            answers.append(exc)

    starting = threading.Thread(target=start, name="start")
    paying = threading.Thread(target=pay, name="bank")
    starting.start()
    try:
        assert flushed.wait(20), "the start did not get to its commit"
        paying.start()
        paying.join(1)
        assert paying.is_alive()  # waiting for the start's turn on the key
    finally:
        go.set()
        starting.join(20)
        paying.join(20)
    [paid] = answers
    assert isinstance(paid, messages.Correlation), paid
    assert (paid.buffered, paid.instance_id) == (True, None)
    [iid] = started
    scenario.complete(iid, "issue_invoice", by="cashier", invoice_amount=1000.0, currency="USD")
    assert scenario.open_elements(iid) == ["write_off"]  # it took its payment

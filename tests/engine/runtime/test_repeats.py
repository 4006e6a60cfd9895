"""A request's key and its answer, kept in the unit of work that did it (repeats.py)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import select

from engine.errors import AnsweredBefore
from engine.runtime import repeats
from engine.storage import Instance, RequestKey
from tests.engine.conftest import Scenario, hold_after_flush, in_thread


def _keyed(key: str) -> Any:
    return lambda asked: repeats.once(
        "erp", key, asked, status=201, answer=lambda started: {"id": started.id}
    )


@pytest.mark.parametrize(
    "db", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_start_sent_twice_at_once_starts_once(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: the first copy is held after its writes went out, before its commit;
    the second waits on the key's unique index, then finds the first's answer."""
    flow = scenario.flow
    flushed, go = hold_after_flush(monkeypatch, in_thread("first"))
    answers: dict[str, Any] = {}

    def send(label: str) -> None:
        try:
            answers[label] = flow.started(
                "payment_collection", actor="erp", business_key="SO-601", once=_keyed("o-601")
            ).id
        except AnsweredBefore as repeat:
            answers[label] = repeat.answer["id"]
        except BaseException as exc:  # reported below
            answers[label] = exc

    first = threading.Thread(target=send, args=("first",), name="first")
    second = threading.Thread(target=send, args=("second",), name="second")
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
    assert isinstance(answers["first"], int), answers
    assert answers["second"] == answers["first"]
    with flow.db.reading() as session:
        started = session.scalars(select(Instance.id).where(Instance.business_key == "SO-601"))
        assert started.all() == [answers["first"]]


def test_a_keyed_unit_must_keep_an_answer(scenario: Scenario) -> None:
    """A command run under a key that forgot its answer fails, and its work with it: a
    repeat could not be answered as the first was."""
    runtime = scenario.flow.runtime
    once = _keyed("o-602")(("nothing",))
    with pytest.raises(RuntimeError, match="kept no answer"), runtime.unit("forgetful", once):
        pass
    with scenario.flow.db.reading() as session:
        assert session.scalars(select(RequestKey)).all() == []

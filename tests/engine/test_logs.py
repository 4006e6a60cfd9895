"""One log line per kind of failure per interval, with the count of those left out."""

from __future__ import annotations

import logging

import pytest

from engine.logs import Throttled


def test_a_failure_that_repeats_is_logged_once_an_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    log = Throttled(logging.getLogger("tradeflow.test"), interval=60, clock=lambda: now[0])
    caplog.set_level(logging.ERROR, "tradeflow.test")
    logged = [log.error("down", "database down") for _ in range(1000)]
    assert logged.count(True) == 1
    assert log.error("bug", "a bug", ValueError("x"))  # another kind has its own minute
    now[0] += 61
    assert log.error("down", "database down")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "database down",
        "a bug",
        "database down (999 more like it left out of the log in 60 s)",
    ]
    assert caplog.records[1].exc_info is not None and caplog.records[0].exc_info is None

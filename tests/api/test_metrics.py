"""/metrics: Prometheus text for operators' scrapers, with an admin's or integration's
token, or from an address on the allow-list."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import pytest

from api import create_app
from engine import queues
from engine.runtime import metrics
from engine.timers.scheduler import Timers
from tests.api.conftest import TRIAGE, ApiClient, problem


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format."""
    label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(label_text) + r"\}" if labels else "")
    found = re.search(rf"^{pattern} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert found, f"no sample {name} {labels} in:\n{text}"
    return float(found.group(1))


def scrape(client: ApiClient) -> str:
    response = client.get("/metrics", "bank")  # a scraper is an integration
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return response.get_data(as_text=True)


def _max_age(client: ApiClient, seconds: float) -> ApiClient:
    """The client's app again, its database gauges read at most every ``seconds``."""
    client.app = create_app({"TRADEFLOW": client.flow, "TRADEFLOW_METRICS_MAX_AGE": seconds})
    client.http = client.app.test_client()
    return client


def test_pending_timers_and_overdue_tasks_per_role(client: ApiClient) -> None:
    _max_age(client, 0)  # read at every scrape
    client.deploy([TRIAGE])
    before = scrape(client)
    assert sample(before, "tradeflow_timers_pending") == 0
    client.start("triage", "cashier")  # routine is due in a working hour (sla PT1H)
    text = scrape(client)
    assert sample(text, "tradeflow_timers_pending") == 1
    assert sample(text, "tradeflow_tasks_open", role="finance") == 3
    assert sample(text, "tradeflow_tasks_overdue", role="finance") == 0
    client.clock.advance(hours=2)
    assert sample(scrape(client), "tradeflow_tasks_overdue", role="finance") == 1


def test_timer_lateness_and_unit_of_work_latency_are_measured(client: ApiClient) -> None:
    _max_age(client, 0)
    client.deploy([TRIAGE])
    lateness = "tradeflow_timer_lateness_seconds_count"
    units = "tradeflow_unit_of_work_seconds_count"
    metrics.timer_lateness(0.0)  # the histograms exist once something was measured
    before = scrape(client)
    client.start("triage", "cashier")
    client.clock.advance(hours=2)
    [fired] = Timers(client.flow.runtime).fire_due()  # the SLA deadline passed
    text = scrape(client)
    assert sample(text, lateness) == sample(before, lateness) + 1
    assert sample(text, units, command="start") >= 1
    assert sample(text, units, command="timer") >= 1
    assert sample(text, "tradeflow_timer_lateness_seconds_bucket", le="+Inf") >= 1
    count, held = client.flow.runtime.live.held  # this process's live cache, as measured
    assert count >= 1
    assert sample(text, "tradeflow_live_workflows") == count
    assert sample(text, "tradeflow_live_workflows_state_bytes") == held
    assert fired.at - fired.due == timedelta(hours=1)  # due at 18:00 Shanghai, seen at 19:00


def test_the_metrics_want_a_scrapers_token_or_an_allowed_address(client: ApiClient) -> None:
    problem(client.get("/metrics"), 401)  # what waits where is no one's business on the net
    for employee in ("clerk", "owner", "auditor"):
        problem(client.get("/metrics", employee), 403, "forbidden")
    assert client.get("/metrics", "admin").status_code == 200
    allowed = create_app(
        {"TRADEFLOW": client.flow, "TRADEFLOW_METRICS_ALLOW": "10.1.0.0/16, 127.0.0.1"}
    ).test_client()
    assert allowed.get("/metrics").status_code == 200  # the test client comes from 127.0.0.1
    outside = allowed.get("/metrics", environ_base={"REMOTE_ADDR": "10.2.0.5"})
    assert outside.status_code == 401
    inside = allowed.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.200.3"})
    assert inside.status_code == 200


def test_scrapers_share_one_reading_of_the_database(
    client: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any number of scrapes within the gauges' age read the database once; past it, a
    scrape answers at once with the reading it has (its age said) while a new one is
    read in the background."""
    client.deploy([TRIAGE])
    real, reads = queues.counts, []

    def counted(*args: Any) -> Any:
        reads.append(1)
        return real(*args)

    monkeypatch.setattr(queues, "counts", counted)
    _max_age(client, 0.5)
    client.start("triage", "cashier")
    texts = [scrape(client) for _ in range(20)]
    assert len(reads) == 1
    assert {sample(t, "tradeflow_tasks_open", role="finance") for t in texts} == {3}
    assert sample(texts[-1], "tradeflow_gauges_age_seconds") < 0.5
    client.start("triage", "cashier")
    time.sleep(0.6)
    stale = scrape(client)  # answered from the last reading; a new one is under way
    assert sample(stale, "tradeflow_tasks_open", role="finance") == 3
    assert sample(stale, "tradeflow_gauges_age_seconds") >= 0.5
    deadline = time.monotonic() + 5
    while sample(scrape(client), "tradeflow_tasks_open", role="finance") != 6:
        assert time.monotonic() < deadline, "the gauges were not read again"
        time.sleep(0.05)
    assert len(reads) == 2

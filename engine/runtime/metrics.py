"""Prometheus measurements the engine takes: timer lateness, unit-of-work latency, and
the live cache's size.

prometheus_client is imported on first use, not at import time: the serve command sets
PROMETHEUS_MULTIPROC_DIR first (so every worker's samples add up),
and the client picks its storage when it is imported.
"""

from __future__ import annotations

import threading
from typing import Any

_LOCK = threading.Lock()
_METRICS: dict[str, Any] = {}

LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
UNIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _get(name: str) -> Any:
    found = _METRICS.get(name)
    if found is None:
        with _LOCK:
            if not _METRICS:
                from prometheus_client import Gauge, Histogram

                _METRICS["lateness"] = Histogram(
                    "tradeflow_timer_lateness_seconds",
                    "How long after its due time a timer or SLA deadline was acted on",
                    buckets=LATENESS_BUCKETS,
                )
                _METRICS["unit"] = Histogram(
                    "tradeflow_unit_of_work_seconds",
                    "Duration of one unit of work (lock, load, command, settle, commit)",
                    ["command"],
                    buckets=UNIT_BUCKETS,
                )
                # each worker process's own cache: the scrape sums the live processes'
                _METRICS["live"] = Gauge(
                    "tradeflow_live_workflows",
                    "Workflows kept in memory between commands (all worker processes)",
                    multiprocess_mode="livesum",
                )
                _METRICS["live_bytes"] = Gauge(
                    "tradeflow_live_workflows_state_bytes",
                    "The saved state's size of the workflows kept in memory",
                    multiprocess_mode="livesum",
                )
            found = _METRICS[name]
    return found


def timer_lateness(seconds: float) -> None:
    _get("lateness").observe(max(seconds, 0.0))


def unit_of_work(command: str, seconds: float) -> None:
    _get("unit").labels(command=command).observe(seconds)


def live_cache(count: int, state_bytes: int) -> None:
    _get("live").set(count)
    _get("live_bytes").set(state_bytes)

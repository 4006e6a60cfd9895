"""``GET /metrics``: Prometheus text format, for operators' scrapers: with the bearer
token of an admin or an integration user, or without one from an address listed in
TRADEFLOW_METRICS_ALLOW (addresses or networks, comma-separated: the Prometheus next
door). The figures say how much work waits where: not for anyone on the network.

The engine's histograms (timer lateness, unit-of-work latency) come from every worker
process when the server runs several (PROMETHEUS_MULTIPROC_DIR, set by ``tradeflow
serve``); the gauges (timers pending, overdue tasks per role) are read from the database,
so every process reports the same truth, at most every 15 seconds (``_DatabaseGauges``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Any

from flask import Flask, Response, request
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from api import auth, context
from engine import queues
from engine.errors import Forbidden
from engine.timers.scheduler import Timers  # not re-exported: see engine/timers/__init__.py
from engine.tradeflow import Tradeflow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
GAUGES_MAX_AGE = 15.0  # seconds: a Prometheus scrape interval
log = logging.getLogger("tradeflow.metrics")


@dataclass(frozen=True)
class _Reading:
    pending: int
    queues: list[queues.QueueCount]
    taken: float  # time.monotonic()


class _DatabaseGauges(Collector):
    """The gauges read from the database, at most once every ``max_age`` seconds per
    process and then in the background: a scrape costs the same at 10^5 open tasks as
    at 10, and any number of scrapers share one reading (each scrape re-counted every
    open task: four anonymous scrapers made the inbox 285 times slower). The first
    scrape waits for a reading; ``max_age`` 0 reads at every scrape."""

    def __init__(self, flow: Tradeflow, max_age: float) -> None:
        self.flow = flow
        self.max_age = max_age
        self._reading: _Reading | None = None
        self._refreshing = threading.Lock()

    def _read(self) -> _Reading:
        pending = Timers(self.flow.runtime).pending()
        with self.flow.db.reading() as session:
            counted = queues.counts(session, None, self.flow.clock.now())
        self._reading = _Reading(pending, counted, time.monotonic())
        return self._reading

    def _refresh_in_background(self) -> None:
        if not self._refreshing.acquire(blocking=False):
            return  # one reading at a time

        def refresh() -> None:
            try:
                self._read()
            except Exception:  # the last reading stands; its age tells
                log.warning("metrics: the gauges could not be read", exc_info=True)
            finally:
                self._refreshing.release()

        threading.Thread(target=refresh, name="metrics-gauges", daemon=True).start()

    def collect(self) -> Iterator[Any]:
        reading = self._reading
        if reading is None or self.max_age <= 0:
            reading = self._read()
        elif time.monotonic() - reading.taken >= self.max_age:
            self._refresh_in_background()
        age = GaugeMetricFamily(
            "tradeflow_gauges_age_seconds", "How old the database gauges below are"
        )
        age.add_metric([], round(time.monotonic() - reading.taken, 3))
        yield age
        pending = GaugeMetricFamily(
            "tradeflow_timers_pending",
            "Running instances waiting for a timer or an SLA deadline",
        )
        pending.add_metric([], reading.pending)
        yield pending
        overdue = GaugeMetricFamily(
            "tradeflow_tasks_overdue", "Open tasks past their due time, per role", labels=["role"]
        )
        open_ = GaugeMetricFamily("tradeflow_tasks_open", "Open tasks per role", labels=["role"])
        for queue in reading.queues:
            overdue.add_metric([queue.role], queue.overdue)
            open_.add_metric([queue.role], queue.open)
        yield overdue
        yield open_


def allowed_networks(text: str) -> list[IPv4Network | IPv6Network]:
    """TRADEFLOW_METRICS_ALLOW's value: addresses or networks, comma-separated."""
    try:
        return [ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise ValueError(f"TRADEFLOW_METRICS_ALLOW: {exc}") from None


def _from_allowed(networks: list[IPv4Network | IPv6Network]) -> bool:
    try:
        address = ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(address in network for network in networks)


def init_app(app: Flask, flow: Tradeflow) -> None:
    max_age = float(app.config.get("TRADEFLOW_METRICS_MAX_AGE", GAUGES_MAX_AGE))
    gauges = _DatabaseGauges(flow, max_age)
    allow = os.environ.get("TRADEFLOW_METRICS_ALLOW", "")
    networks = allowed_networks(str(app.config.get("TRADEFLOW_METRICS_ALLOW", allow)))

    @app.get("/metrics", endpoint="metrics")
    def metrics() -> Response:
        if not _from_allowed(networks):
            auth.authenticate()
            if not (context.actor().is_admin or context.actor().is_integration):
                raise Forbidden("only admins and integrations (a scraper) may read the metrics")
        registry = CollectorRegistry()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry = REGISTRY
        body = generate_latest(registry) + generate_latest(_Only(gauges))
        return Response(body, content_type=CONTENT_TYPE)


class _Only(CollectorRegistry):
    """A registry holding one collector, built per scrape (it reads the database)."""

    def __init__(self, collector: Collector) -> None:
        super().__init__(auto_describe=False)
        self.register(collector)

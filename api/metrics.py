"""``GET /metrics``: Prometheus text format, for operators' scrapers: with the bearer
token of an admin or an integration user, or without one from an address listed in
TRADEFLOW_METRICS_ALLOW (addresses or networks, comma-separated: the Prometheus next
door). The figures say how much work waits where: not for anyone on the network.

The engine's histograms (timer lateness, unit-of-work latency) come from every worker
process when the server runs several (PROMETHEUS_MULTIPROC_DIR, set by ``tradeflow
serve``); the gauges (timers pending, overdue tasks per role) are read from the database
at scrape time, so every process reports the same truth.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
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


class _DatabaseGauges(Collector):
    def __init__(self, flow: Tradeflow) -> None:
        self.flow = flow

    def collect(self) -> Iterator[Any]:
        pending = GaugeMetricFamily(
            "tradeflow_timers_pending",
            "Running instances waiting for a timer or an SLA deadline",
        )
        pending.add_metric([], Timers(self.flow.runtime).pending())
        yield pending
        overdue = GaugeMetricFamily(
            "tradeflow_tasks_overdue", "Open tasks past their due time, per role", labels=["role"]
        )
        open_ = GaugeMetricFamily("tradeflow_tasks_open", "Open tasks per role", labels=["role"])
        with self.flow.db.reading() as session:
            for queue in queues.counts(session, None, self.flow.clock.now()):
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
    gauges = _DatabaseGauges(flow)
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

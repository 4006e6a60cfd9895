"""Is the service up and its database answering? (No token needed.)

The database is probed on a connection of its own, within two seconds (a stuck pool or
a stalled writer shows as busy, not as a hang); the answer names each dependency's
state: 200 when all are up, 503 (not 500) when one is not. ``tradeflow serve`` also
answers the same question from a thread of its own (cli/health.py), for when every
request thread is busy."""

from __future__ import annotations

import copy
import logging
import threading
import time
import weakref
from typing import Any
from weakref import WeakKeyDictionary

from flask.views import MethodView
from marshmallow import Schema, fields

from api.context import flow
from api.errors import problem
from api.openapi import Blueprint
from engine.logs import Throttled
from engine.storage import Database, faults

blp = Blueprint("health", __name__, url_prefix="/api/v1/health", description="Liveness")
_log = Throttled(logging.getLogger("tradeflow.health"))
PROBE_SECONDS = 2.0
REUSE_SECONDS = 1.0  # a probe's answer serves every caller this long
UNHEALTHY = "unhealthy"  # the problem type of a 503


class HealthCheckOut(Schema):
    status = fields.Str(metadata={"example": "ok", "description": "ok, busy, cancelled or down"})
    detail = fields.Str(allow_none=True)


class HealthOut(Schema):
    status = fields.Str(metadata={"example": "ok", "description": "ok, or the worst check's"})
    checks = fields.Dict(keys=fields.Str(), values=fields.Nested(HealthCheckOut))


def check(db: Database) -> tuple[dict[str, Any], int]:
    """The health answer and its status, for the database behind ``db``: 200 with each
    check, or 503 as problem+json whose ``checks`` name what is not answering. One probe
    runs at a time per database and its answer serves every caller for a second, so a
    flood of health checks costs the database one connection a second."""
    with _probes_lock:
        probe = _probes.get(db)
        if probe is None:
            probe = _probes[db] = _Probe(db)
    body, status = probe.answer()
    return copy.deepcopy(body), status


class _Probe:
    def __init__(self, db: Database) -> None:
        self._db = weakref.ref(db)  # the probe does not keep its database alive
        self._lock = threading.Lock()
        self._last: tuple[float, dict[str, Any], int] | None = None
        self._running: threading.Thread | None = None

    def answer(self) -> tuple[dict[str, Any], int]:
        with self._lock:  # the others wait for this one's answer (at most PROBE_SECONDS)
            last = self._last
            if last is not None and time.monotonic() - last[0] < REUSE_SECONDS:
                return last[1], last[2]
            body, status = self._probe()
            self._last = (time.monotonic(), body, status)
            return body, status

    def _probe(self) -> tuple[dict[str, Any], int]:
        if self._running is not None and self._running.is_alive():
            return _unhealthy("down", "the database has not answered the last probe yet")
        failed: list[BaseException] = []

        db = self._db()
        if db is None:
            return _unhealthy("down", "the database is gone")

        def run() -> None:
            try:
                db.probe(PROBE_SECONDS)
            except BaseException as exc:  # reported below
                failed.append(exc)

        self._running = threading.Thread(target=run, name="health-probe", daemon=True)
        self._running.start()
        self._running.join(PROBE_SECONDS)
        if self._running.is_alive():  # a connection that hangs: the answer can't wait
            _log.error("health down", "health: the database did not answer within 2 s")
            return _unhealthy("down", f"the database did not answer within {PROBE_SECONDS:g} s")
        if failed:
            exc = failed[0]
            fault = faults.fault_of(exc)
            kind = fault.kind.value if fault is not None else "down"
            detail = fault.detail if fault is not None else "the database answered with an error"
            _log.error(f"health {kind}", f"health: database {kind}: {exc}".splitlines()[0])
            return _unhealthy(kind, detail)
        return {"status": "ok", "checks": {"database": {"status": "ok", "detail": None}}}, 200


def _unhealthy(kind: str, detail: str) -> tuple[dict[str, Any], int]:
    return {
        "type": f"urn:tradeflow:problem:{UNHEALTHY}",
        "title": "Service Unavailable",
        "status": 503,
        "detail": f"database: {detail}",
        "checks": {"database": {"status": kind, "detail": detail}},
    }, 503


_probes: WeakKeyDictionary[Database, _Probe] = WeakKeyDictionary()
_probes_lock = threading.Lock()


@blp.route("")
class Health(MethodView):
    @blp.response(200, HealthOut)
    @blp.problems(503)
    @blp.doc(security=[])
    def get(self) -> Any:
        """200 when the database answers within two seconds; 503 (problem+json) whose
        ``checks`` name what does not."""
        body, status = check(flow().db)
        if status != 200:
            del body["type"], body["title"], body["status"]
            return problem(status, slug=UNHEALTHY, **body)
        return body

"""Is the service up and its database answering? (No token needed.)

The database is probed on a connection of its own, within two seconds (a stuck pool or
a stalled writer shows as busy, not as a hang); the answer names each dependency's
state: 200 when all are up, 503 (not 500) when one is not. ``tradeflow serve`` also
answers the same question from a thread of its own (cli/health.py), for when every
request thread is busy."""

from __future__ import annotations

import logging
from typing import Any

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
UNHEALTHY = "unhealthy"  # the problem type of a 503


class HealthCheckOut(Schema):
    status = fields.Str(metadata={"example": "ok", "description": "ok, busy, cancelled or down"})
    detail = fields.Str(allow_none=True)


class HealthOut(Schema):
    status = fields.Str(metadata={"example": "ok", "description": "ok, or the worst check's"})
    checks = fields.Dict(keys=fields.Str(), values=fields.Nested(HealthCheckOut))


def check(db: Database) -> tuple[dict[str, Any], int]:
    """The health answer and its status, for the database behind ``db``: 200 with each
    check, or 503 as problem+json whose ``checks`` name what is not answering."""
    try:
        db.probe(PROBE_SECONDS)
    except Exception as exc:
        fault = faults.fault_of(exc)
        kind = fault.kind.value if fault is not None else "down"
        detail = fault.detail if fault is not None else "the database answered with an error"
        _log.error(f"health {kind}", f"health: database {kind}: {exc}".splitlines()[0])
        checks = {"database": {"status": kind, "detail": detail}}
        return {
            "type": f"urn:tradeflow:problem:{UNHEALTHY}",
            "title": "Service Unavailable",
            "status": 503,
            "detail": f"database: {detail}",
            "checks": checks,
        }, 503
    return {"status": "ok", "checks": {"database": {"status": "ok", "detail": None}}}, 200


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

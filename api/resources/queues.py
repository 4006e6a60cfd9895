"""Queue sizes per role."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from api.auth import reads_everything
from api.context import actor, flow
from api.openapi import Blueprint
from api.schemas import QueuesOut
from engine import queues

blp = Blueprint("queues", __name__, url_prefix="/api/v1/queues", description="Role queues")


@blp.route("")
class Queues(MethodView):
    @blp.response(200, QueuesOut)
    def get(self) -> Any:
        """Open, claimed and overdue tasks for each role the caller can see."""
        who = actor()
        roles = None if reads_everything(who) else set(who.roles)
        with flow().db.reading() as session:
            return {"items": queues.counts(session, roles, flow().clock.now())}

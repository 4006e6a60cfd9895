"""Messages from other systems (the bank feed, the ERP)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import request
from flask.views import MethodView

from api.auth import require, sends_messages
from api.context import actor, flow
from api.openapi import Blueprint
from api.schemas import MessageIn, MessageOut

blp = Blueprint(
    "messages",
    __name__,
    url_prefix="/api/v1/messages",
    description="Messages correlated to waiting instances",
)


@blp.route("")
class Messages(MethodView):
    @require(sends_messages, "integration users and admins")
    @blp.arguments(MessageIn)
    @blp.response(200, MessageOut, description="delivered")
    @blp.alt_response(202, schema=MessageOut, description="kept until an instance waits for it")
    @blp.problems(403, 409, 422)
    def post(self, body: dict[str, Any]) -> Any:
        """Correlate by name plus business key and/or variable values. With an
        ``Idempotency-Key`` header, a repeat of the same message under the same key (the
        sender's) answers as the first did and changes nothing; the same key with another
        message is refused (422)."""
        ttl = timedelta(seconds=body["ttl_seconds"]) if "ttl_seconds" in body else None
        result = flow().correlate(
            body["name"],
            actor=actor().name,
            idempotency_key=request.headers.get("Idempotency-Key"),
            business_key=body.get("business_key"),
            correlation=body.get("correlation"),
            variables=body["variables"],
            **({"ttl": ttl} if ttl else {}),
        )
        out = {
            "message_id": result.message_id,
            "kept": result.buffered,
            "delivered_to": [] if result.instance_id is None else [result.instance_id],
        }
        return out, 202 if result.buffered else 200

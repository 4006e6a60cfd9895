"""Is the service up and its database answering? (No token needed.)"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields
from sqlalchemy import text

from api.context import flow
from api.openapi import Blueprint

blp = Blueprint("health", __name__, url_prefix="/api/v1/health", description="Liveness")


class HealthOut(Schema):
    status = fields.Str(metadata={"example": "ok"})


@blp.route("")
class Health(MethodView):
    @blp.response(200, HealthOut)
    @blp.doc(security=[])
    def get(self) -> Any:
        """200 when the database answers."""
        with flow().db.reading() as session:
            session.execute(text("SELECT 1"))
        return {"status": "ok"}

"""The audit trail across instances (auditors and admins)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from api.auth import flow, reads_everything, require
from api.openapi import Blueprint
from api.schemas import AuditArgs, AuditPage
from engine import audit

blp = Blueprint(
    "audit", __name__, url_prefix="/api/v1/audit", description="Every recorded event, filtered"
)


@blp.route("")
class Audit(MethodView):
    @require(reads_everything, "auditors and admins")
    @blp.arguments(AuditArgs, location="query")
    @blp.response(200, AuditPage)
    @blp.problems(403)
    def get(self, args: dict[str, Any]) -> Any:
        """Events by time range, actor, kind and process key, oldest first."""
        with flow().db.reading() as session:
            rows, total = audit.search(session, audit.AuditQuery(**args))
        return {"items": rows, "total": total}

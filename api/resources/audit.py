"""The audit trail across instances (auditors and admins)."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from api.auth import reads_everything, require
from api.context import flow
from api.openapi import Blueprint
from api.schemas import AuditArgs, AuditPage, ExportArgs
from engine import audit
from engine.audit import export
from engine.errors import Invalid

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


# format -> (media type, file extension, writer)
FORMATS = {
    "csv": ("text/csv", "csv", export.to_csv),
    "xes": ("application/xml", "xes", export.to_xes),
}
_TEXT = {"schema": {"type": "string"}}
EXPORT_MAX_BYTES = 256 * 2**20  # one export's size (held twice, briefly, as it is handed over)


@blp.route("/export")
class AuditExport(MethodView):
    @require(reads_everything, "auditors and admins")
    @blp.arguments(ExportArgs, location="query")
    @blp.response(200, content_type="text/csv")
    @blp.doc(
        responses={
            200: {
                "description": "The instances' events as a file download: CSV, a row per "
                "event (instance, then seq), or XES, a trace per instance",
                "content": {"text/csv": _TEXT, "application/xml": _TEXT},
            }
        }
    )
    @blp.problems(403)
    def get(self, args: dict[str, Any]) -> Any:
        """Every instance's events for other tools: CSV, or XES for process mining;
        optionally one process key's instances, and events since/until."""
        mimetype, extension, write = FORMATS[args["format"]]
        # Built whole, then handed to the server in one piece: granian sends it on its
        # own threads, so a client that reads slowly (or never) holds neither a request
        # thread nor a read transaction. Streamed, it held the worker's only thread for
        # as long as the client liked. The cost is memory, bounded by EXPORT_MAX_BYTES.
        body = bytearray()  # one buffer: not the parts and their join at once
        with flow().db.reading() as session:
            events = export.events_for_export(
                session, args.get("definition"), args.get("since"), args.get("until")
            )
            for chunk in export.chunks(write(events)):
                body += chunk.encode()
                if len(body) > EXPORT_MAX_BYTES:
                    raise Invalid(
                        f"the export is over {EXPORT_MAX_BYTES // 2**20} MiB: narrow it by "
                        "definition, since or until",
                        errors={"since": ["narrow the export"], "until": ["narrow the export"]},
                    )
        return Response(
            bytes(body),
            mimetype=mimetype,
            headers={"Content-Disposition": f"attachment; filename=tradeflow-audit.{extension}"},
        )

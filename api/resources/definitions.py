"""Process definitions: deploy (process owners, admins) and read."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from api.auth import owner_or_admin, require
from api.context import actor, flow
from api.headers import attachment
from api.openapi import Blueprint
from api.schemas import (
    UNSTORABLE,
    CheckOut,
    DefinitionOut,
    DeploymentOut,
    UploadIn,
    VersionArgs,
    storable,
)
from engine.errors import DiagramInvalid, Invalid
from engine.modeling import definitions

blp = Blueprint(
    "definitions",
    __name__,
    url_prefix="/api/v1/definitions",
    description="BPMN, DMN and form deployments",
)
MAX_UPLOAD = 20 * 1024 * 1024


@blp.route("")
class Definitions(MethodView):
    @blp.response(200, DefinitionOut(many=True))
    def get(self) -> Any:
        """The latest version of every process."""
        with flow().db.reading() as session:
            return definitions.catalog(session)

    @require(owner_or_admin, "process owners and admins")
    @blp.arguments(UploadIn, location="files")
    @blp.response(201, DeploymentOut, description="something new was deployed")
    @blp.alt_response(200, schema=DeploymentOut, description="all of it was deployed already")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")  # every lint problem, in `errors`
    @blp.problems(403)
    def post(self, _files: dict[str, Any]) -> Any:
        """Deploy .bpmn, .dmn and .form files together (multipart; any field names)."""
        named = _uploaded()
        result = flow().deploy([(name, f.read()) for name, f in named], actor=actor().name)
        names = {}
        with flow().db.reading() as session:
            for item in result.definitions:
                names[item.key] = definitions.find(session, item.key, item.version).name
        body = {
            "deployment_id": result.deployment_id,
            "definitions": [{**vars(d), "name": names.get(d.key)} for d in result.definitions],
            "forms": [vars(f) for f in result.forms],
            "decisions": [vars(d) for d in result.decisions],
            "warnings": result.warnings,
        }
        return body, 201 if result.deployment_id is not None else 200


@blp.route("/check")
class DefinitionCheck(MethodView):
    @require(owner_or_admin, "process owners and admins")
    @blp.arguments(UploadIn, location="files")
    @blp.response(200, CheckOut, description="it would deploy: no problems")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")  # every lint problem, in `errors`
    @blp.problems(403)
    def post(self, _files: dict[str, Any]) -> Any:
        """Lint files as a deployment would, storing nothing (the modeler's check)."""
        named = _uploaded()
        problems = flow().check([(name, f.read()) for name, f in named], actor=actor().name)
        if problems:
            raise DiagramInvalid(problems)
        return {"errors": []}


def _uploaded() -> list[tuple[str, Any]]:
    if (request.content_length or 0) > MAX_UPLOAD:
        raise RequestEntityTooLarge(f"an upload is at most {MAX_UPLOAD // (1024 * 1024)} MiB")
    files = [f for name in request.files for f in request.files.getlist(name)]
    if not files:
        raise BadRequest("upload one or more .bpmn, .dmn or .form files (multipart)")
    named = [(f.filename or "upload", f) for f in files]
    if not storable([name for name, _ in named]):
        raise Invalid(f"a file name {UNSTORABLE}", errors={"files": [f"names {UNSTORABLE}"]})
    return named


@blp.route("/<key>")
class DefinitionVersions(MethodView):
    @blp.response(200, DefinitionOut(many=True))
    def get(self, key: str) -> Any:
        """Every version of one process, newest first."""
        with flow().db.reading() as session:
            return definitions.versions(session, key)


@blp.route("/<key>/xml")
class DefinitionXml(MethodView):
    @blp.arguments(VersionArgs, location="query")
    @blp.response(200, content_type="application/xml")
    def get(self, args: dict[str, Any], key: str) -> Any:
        """The diagram as deployed (latest version unless ?version=), as a file download."""
        with flow().db.reading() as session:
            found = definitions.find(session, key, args.get("version"))
            xml = definitions.source(session, key, found.version)
        # A download, never a page: a browser renders XML, and runs a script in the XHTML
        # namespace that a diagram's extension elements may hold (nosniff and a sandboxing
        # policy are on every response: api/headers.py).
        return Response(
            xml,
            mimetype="application/xml",
            headers={"Content-Disposition": attachment(f"{key}-v{found.version}.bpmn")},
        )

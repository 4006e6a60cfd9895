"""flask-smorest's Api, documenting errors as the problem+json they are."""

from __future__ import annotations

import http
from typing import Any

from flask_smorest import Api
from flask_smorest.utils import prepare_response
from marshmallow import Schema, fields

from api.errors import PROBLEM


class FieldProblem(Schema):
    field = fields.Str(metadata={"description": "the field, dotted for nested ones"})
    element = fields.Str(metadata={"description": "the diagram element (deploy)"})
    file = fields.Str(metadata={"description": "the uploaded file (deploy)"})
    message = fields.Str()


class Problem(Schema):
    """RFC 9457 problem details."""

    type = fields.Str(metadata={"example": "urn:tradeflow:problem:not-in-role"})
    title = fields.Str()
    status = fields.Int()
    detail = fields.Str()
    errors = fields.List(fields.Nested(FieldProblem))


class ProblemApi(Api):  # type: ignore[misc]
    ERROR_SCHEMA = Problem

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Error", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

    def _register_error_handlers(self) -> None:
        """api/errors.py handles every error; nothing of flask-smorest's own."""

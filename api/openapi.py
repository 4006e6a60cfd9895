"""flask-smorest's Api and Blueprint, documenting errors as the problem+json they are.

Every operation lists the problems it answers with besides ``default`` (which stands for
the unexpected 500): the ones every operation of a kind shares are added here once
(``SharedProblems``), the rest each view names with ``@blp.problems(...)``.
"""

from __future__ import annotations

import http
import json
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

import flask
import flask_smorest
import werkzeug
from apispec import BasePlugin
from flask_smorest import Api
from flask_smorest.utils import prepare_response, resolve_schema_instance
from marshmallow import Schema, fields
from webargs.core import missing
from webargs.flaskparser import FlaskParser, abort, is_json_request
from werkzeug.exceptions import BadRequest

from api.dumps import compile_dump
from api.errors import PROBLEM
from engine.modeling import INT_RANGE, nested_messages, number_problems

F = TypeVar("F", bound=Callable[..., Any])


class FieldProblem(Schema):
    field = fields.Str(metadata={"description": "the field, dotted for nested ones"})
    element = fields.Str(allow_none=True, metadata={"description": "the diagram element (deploy)"})
    file = fields.Str(allow_none=True, metadata={"description": "the uploaded file (deploy)"})
    message = fields.Str()


class Problem(Schema):
    """RFC 9457 problem details."""

    type = fields.Str(metadata={"example": "urn:tradeflow:problem:not-in-role"})
    title = fields.Str()
    status = fields.Int()
    detail = fields.Str()
    errors = fields.List(fields.Nested(FieldProblem))
    budget = fields.Str(
        metadata={"description": "budget-exceeded: the budget spent (steps, seconds, built)"}
    )
    element = fields.Str(
        allow_none=True, metadata={"description": "budget-exceeded: the element that was running"}
    )


def _ref(status: int) -> str:
    """The response component a problem status is documented by (ProblemApi's)."""
    return http.HTTPStatus(status).name


class SharedProblems(BasePlugin):
    """The problems an operation answers with by its kind: 401 where it needs a token,
    404 where its path names something, 400 (malformed), 413 (too large) and 422 (a
    number JSON can't carry, say) where it takes a request body; and every one 503 (with
    Retry-After) when the database can't answer now (api/errors.py)."""

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **_: Any
    ) -> None:
        for operation in (operations or {}).values():
            shared = []
            if operation.get("security") != []:
                shared.append(401)
            if "{" in (path or ""):
                shared.append(404)
            if "requestBody" in operation:
                shared += [400, 413, 422]
            shared.append(503)
            responses = operation.setdefault("responses", {})
            for status in shared:
                responses.setdefault(str(status), _ref(status))


def _int(text: str) -> int:
    # a 5,000-digit integer would cost the decoder a quadratic conversion, then fail past
    # Python's 4,300-digit limit (a 500); anything this long is out of range anyway
    return int(text) if len(text) <= 40 else INT_RANGE[1] + 1


class _Parser(FlaskParser):
    """webargs' parser, but JSON nested deeper than Python's decoder recurses is a 400
    like any other malformed body, not a RecursionError (a 500); and numbers JSON can't
    carry back (NaN, Infinity, 1e999, integers past 64 bits) are a 422 naming each."""

    def _raw_load_json(self, req: flask.Request) -> Any:
        if not is_json_request(req):
            return missing
        try:  # undecodable bytes and malformed JSON: webargs answers 400 for both
            body = json.loads(req.get_data(cache=True).decode(), parse_int=_int)
        except RecursionError:
            raise BadRequest("the JSON body is nested too deeply") from None
        problems = number_problems(body)
        if problems:
            abort(422, messages={"json": nested_messages(problems)})
        return body


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]
    ARGUMENTS_PARSER = _Parser()

    def response(
        self, status_code: int, schema: type[Schema] | Schema | None = None, **kwargs: Any
    ) -> Callable[[F], F]:
        """As flask-smorest's (the schema documents the response), but the body is dumped
        by the schema compiled once (api/dumps.py), then JSON; a view's own Response or
        (body, status, headers) tuple still goes through flask-smorest."""
        decorate = super().response(status_code, schema, **kwargs)
        if schema is None:
            return cast(Callable[[F], F], decorate)
        dump = compile_dump(resolve_schema_instance(schema))

        def compiled(view: F) -> F:
            @wraps(view)
            def dumped(*args: Any, **kw: Any) -> Any:
                result = view(*args, **kw)
                if isinstance(result, tuple | werkzeug.Response):
                    return result
                response = flask.current_app.json.response(dump(result))
                response.status_code = status_code
                return response

            return cast(F, decorate(dumped))

        return compiled

    def arguments(self, schema: type[Schema] | Schema, *args: Any, **kwargs: Any) -> Any:
        """As flask-smorest's, but a schema class is made an instance once, here: webargs
        would make one per request, for the same document."""
        instance = schema() if isinstance(schema, type) else schema
        return super().arguments(instance, *args, **kwargs)

    def problems(self, *statuses: int) -> Callable[[F], F]:
        """Document the problems a view answers with beyond those of its kind (403,
        409...)."""

        def decorate(view: F) -> F:
            for status in statuses:
                view = self.alt_response(status, response=_ref(status))(view)
            return view

        return decorate


class ProblemApi(Api):  # type: ignore[misc]
    ERROR_SCHEMA = Problem

    def __init__(self, app: Any = None, **kwargs: Any) -> None:
        spec_kwargs = kwargs.pop("spec_kwargs", None) or {}
        spec_kwargs.setdefault("extra_plugins", [SharedProblems()])
        super().__init__(app, spec_kwargs=spec_kwargs, **kwargs)

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            if status == http.HTTPStatus.SERVICE_UNAVAILABLE:
                response["description"] = "the database can't answer now; try again"
                response["headers"] = {
                    "Retry-After": {
                        "description": "seconds to wait before trying again",
                        "schema": {"type": "integer"},
                    }
                }
            prepare_response(response, self.spec, PROBLEM)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Error", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

    def _register_error_handlers(self) -> None:
        """api/errors.py handles every error; nothing of flask-smorest's own."""

"""Every error leaves as RFC 9457 problem+json, mapped here and nowhere else."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, cast

from flask import Flask, Response, current_app, json, request
from werkzeug.exceptions import HTTPException

from engine import errors as domain
from engine.logs import Throttled
from engine.storage import faults

_LOG = "tradeflow.failures"  # the app's Throttled log (per app: its own minute)


def _log() -> Throttled:
    return cast(Throttled, current_app.extensions[_LOG])


PROBLEM = "application/problem+json"

# domain error -> (status, type slug); the first match in this order wins
_STATUS: list[tuple[type[domain.TradeflowError], int, str]] = [
    (domain.DiagramInvalid, 422, "diagram-invalid"),
    (domain.FormInvalid, 422, "form-invalid"),
    (domain.ExpressionRefused, 422, "expression-refused"),
    (domain.MessageInvalid, 422, "message-invalid"),
    (domain.DelegationRefused, 422, "delegation-refused"),
    (domain.Invalid, 422, "invalid"),
    (domain.SeparationOfDuty, 403, "separation-of-duty"),
    (domain.NotInRole, 403, "not-in-role"),
    (domain.Forbidden, 403, "forbidden"),
    (domain.TooManyAttempts, 429, "too-many-attempts"),
    (domain.TaskAlreadyClaimed, 409, "task-already-claimed"),
    (domain.TaskNotOpen, 409, "task-not-open"),
    (domain.InstanceNotRunning, 409, "instance-not-running"),
    (domain.MessageUndeliverable, 409, "message-undeliverable"),
    (domain.BusinessKeyTaken, 409, "business-key-taken"),
    (domain.Conflict, 409, "conflict"),
    (domain.NotFound, 404, "not-found"),
    (domain.BudgetExceeded, 422, "budget-exceeded"),
    (domain.ProcessFailed, 422, "process-failed"),
]


def problem(
    status: int, detail: str | None = None, *, slug: str | None = None, **extra: Any
) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:tradeflow:problem:{slug}" if slug else "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="tradeflow"'
    return response


def _domain(error: domain.TradeflowError) -> Response:
    status, slug = next(
        ((status, slug) for cls, status, slug in _STATUS if isinstance(error, cls)),
        (500, "internal"),
    )
    extra: dict[str, Any] = {}
    if isinstance(error, domain.DiagramInvalid):
        extra["errors"] = [
            {"file": p.file, "element": p.element, "message": p.message} for p in error.problems
        ]
    elif isinstance(error, domain.Invalid) and "errors" in error.details:
        extra["errors"] = _field_errors(error.details["errors"])
    elif isinstance(error, domain.Invalid) and "names" in error.details:  # variable names
        extra["errors"] = [
            {"field": f"variables.{name}", "message": "not a variable name"}
            for name in error.details["names"]
        ]
    elif isinstance(error, domain.BudgetExceeded):
        extra["budget"] = error.details.get("budget")
        extra["element"] = error.details.get("element")
    return problem(status, error.message, slug=slug, **extra)


def _field_errors(messages: Any, prefix: str = "") -> list[dict[str, str]]:
    """marshmallow's nested {field: [messages]} as a flat [{field, message}] list."""
    found: list[dict[str, str]] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            found += _field_errors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(messages, list):
        for item in messages:
            if isinstance(item, (dict, list)):
                found += _field_errors(item, prefix)
            else:
                found.append({"field": prefix or "_body", "message": str(item)})
    else:
        found.append({"field": prefix or "_body", "message": str(messages)})
    return found


def _http(error: HTTPException) -> Response:
    status = error.code or 500
    extra: dict[str, Any] = {}
    messages = getattr(error, "data", {}).get("messages") if hasattr(error, "data") else None
    detail: str | None
    if messages:  # webargs/flask-smorest validation: {location: {field: [msg]}}
        extra["errors"] = [e for location in messages.values() for e in _field_errors(location)]
        detail = "the request does not fit the schema"
    else:
        detail = error.description if isinstance(error.description, str) else None
    response = problem(status, detail, **extra)
    if status == 405 and error.get_response().headers.get("Allow"):
        response.headers["Allow"] = error.get_response().headers["Allow"]
    return response


def _answered_before(repeat: domain.AnsweredBefore) -> Response:
    """A request sent again under its key: the first answer, as it was."""
    # as the first was written (the app's JSON: its separators, its key order)
    response = cast(Response, current_app.json.response(repeat.answer))
    response.status_code = repeat.status
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _unexpected(error: Exception) -> Response:
    """Anything the engine did not raise on purpose. The database not answering now (a
    lock or statement that ran out of time, a lost connection) is 503 with Retry-After:
    the same request later may succeed. Anything else is 500. Either way, one log line
    per kind of failure a minute, not a traceback per request."""
    fault = faults.fault_of(error)
    if fault is not None:
        cause = str(error).splitlines()[0] if str(error) else type(error).__name__
        _log().error(f"database {fault.kind}", f"database {fault.kind}: {cause}")
        response = problem(503, fault.detail, slug=f"database-{fault.kind}")
        response.headers["Retry-After"] = str(fault.retry_after)
        return response
    # the route's pattern, never the path as sent: it may carry newlines, and each
    # different path would be a kind of failure of its own
    where = request.url_rule.rule if request.url_rule is not None else "(no route)"
    _log().error(
        f"{type(error).__name__} {request.method} {where}",
        f"unexpected {type(error).__name__} on {request.method} {where}",
        error,
    )
    return problem(500, "internal error")


def init_app(app: Flask) -> None:
    app.extensions[_LOG] = Throttled(logging.getLogger("tradeflow.api"))
    app.register_error_handler(Exception, _unexpected)
    app.register_error_handler(domain.AnsweredBefore, _answered_before)
    app.register_error_handler(domain.TradeflowError, _domain)
    app.register_error_handler(HTTPException, _http)

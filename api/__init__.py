"""The HTTP API: thin blueprints over the engine, one per resource.

HTTP in, one engine call, HTTP out. Every error leaves as problem+json (api/errors.py);
every request but health carries a bearer token (api/auth.py).
"""

from __future__ import annotations

import io
import os
from typing import Any

import swagger_ui_bundle
from flask import Flask, request, send_from_directory
from werkzeug.exceptions import NotFound, RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from api import auth, errors, headers, metrics, web
from api.dumps import JsonProvider
from api.openapi import ProblemApi
from api.resources import (
    analytics,
    audit,
    definitions,
    health,
    instances,
    messages,
    queues,
    tasks,
)
from api.schemas import storable
from engine.tradeflow import Tradeflow

PUBLIC = {
    "health.Health",
    "api-docs.openapi_json",
    "api-docs.openapi_swagger_ui",
    "swagger_static",
    "metrics",
}
SWAGGER_STATIC = "/api/v1/docs/static/"
MAX_REQUEST = 25 * 1024 * 1024  # an upload of diagrams and forms (api/resources/definitions)
MAX_JSON_REQUEST = 1024 * 1024  # every other body: task data, variables, messages
UPLOADS = {"definitions.Definitions", "definitions.DefinitionCheck"}


def _read_chunked(limit: int) -> None:
    """A body sent in chunks, without a length, read here up to ``limit``: more is a 413.
    Werkzeug would hand the app its first ``limit`` bytes as if they were all of it."""
    body = request.environ["wsgi.input"].read(limit + 1)
    if len(body) > limit:
        raise RequestEntityTooLarge()
    request.environ["wsgi.input"] = io.BytesIO(body)  # whole: read it to its end
    request.environ["wsgi.input_terminated"] = True
    request.environ["CONTENT_LENGTH"] = str(len(body))
    for read in ("content_length", "stream"):  # werkzeug keeps what it read of them
        request.__dict__.pop(read, None)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app; nothing happens at import time. ``TRADEFLOW`` in ``config`` is the
    engine to use (tests pass one on their own database)."""
    app = Flask(__name__, static_folder=None)  # no /static route: the API serves no files
    app.json = JsonProvider(app)
    app.config.update(
        API_TITLE="Tradeflow",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL=SWAGGER_STATIC,  # served from the package: works offline
        MAX_CONTENT_LENGTH=MAX_REQUEST,
        API_SPEC_OPTIONS={
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}],
        },
    )
    app.config.update(config or {})
    flow: Tradeflow = app.config.get("TRADEFLOW") or Tradeflow()
    app.extensions["tradeflow"] = flow

    proxies = int(app.config.get("TRADEFLOW_PROXIES", os.environ.get("TRADEFLOW_PROXIES", "0")))
    if proxies > 0:
        # behind that many reverse proxies: the client's address and scheme are the ones
        # they forward (the sign-in throttle counts per address; cookies are Secure on HTTPS)
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )

    api = ProblemApi(app)
    for module in (health, definitions, instances, tasks, queues, messages, audit, analytics):
        api.register_blueprint(module.blp)
    api.register_blueprint(analytics.kpis_blp)
    errors.init_app(app)
    metrics.init_app(app, flow)
    auth.init_app(app)
    web.init_app(app)
    headers.init_app(app)

    @app.get(f"{SWAGGER_STATIC}<path:name>", endpoint="swagger_static")
    def swagger_static(name: str) -> Any:
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, name)

    @app.before_request
    def _body_limit() -> None:
        # a JSON body larger than this is refused with 413 before it is read or parsed
        if request.endpoint not in UPLOADS:
            request.max_content_length = MAX_JSON_REQUEST

    @app.before_request
    def _authenticate() -> None:
        endpoint = request.endpoint
        if endpoint not in PUBLIC and endpoint is not None and not endpoint.startswith("web."):
            auth.authenticate()  # the pages check their session themselves (api/web)

    @app.before_request
    def _chunked_body() -> None:
        # after the token: nobody unknown makes the server read a body
        if request.content_length is None and "chunked" in request.headers.get(
            "Transfer-Encoding", ""
        ):
            limit = request.max_content_length
            if limit is not None:
                _read_chunked(limit)

    @app.before_request
    def _storable_names() -> None:
        """A name in the path that no database could hold (a NUL) names nothing."""
        if not storable(list((request.view_args or {}).values())):
            raise NotFound()

    return app

"""Security headers on every response: what a browser may run, load and frame.

The pages (api/web) get a Content-Security-Policy whose scripts must carry this
response's nonce: the pages' own scripts are files under /static with it, their data is
JSON in ``<script type="application/json">`` (Jinja's ``tojson``), so markup that ever
slipped through unescaped could still run nothing. Everything else (JSON, problem+json,
CSV, diagrams, /metrics, static files) is data: ``default-src 'none'`` and a sandbox, so
even a response a browser was talked into rendering runs no script. The Swagger UI page
(flask-smorest's template, our own OpenAPI document) gets what it needs: its scripts,
its one inline script by hash, inline styles and data: images.

Every value but a page's nonce is built once; a response pays one list extension.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import unicodedata
from functools import lru_cache
from urllib.parse import quote

from flask import Flask, g, request
from werkzeug.http import dump_options_header
from werkzeug.wrappers import Response

SWAGGER_UI = "api-docs.openapi_swagger_ui"
CSP = "Content-Security-Policy"

_ALWAYS = [
    ("X-Content-Type-Options", "nosniff"),  # a JSON or XML body is never taken for a page
    ("X-Frame-Options", "DENY"),  # browsers without frame-ancestors
    ("Referrer-Policy", "same-origin"),
]
# what the pages' libraries need, found in Chromium by listening for
# securitypolicyviolation on every page (tests/web/conftest.py: the browser tests fail on one)
_PAGE_POLICY = (
    "default-src 'self'; script-src 'nonce-{nonce}'; style-src 'self'{styles}; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# The editors (bpmn-js, form-js and dmn-js with their properties panels and CodeMirror)
# set style attributes from markup and add <style> elements; the other pages need neither.
# Inline style cannot run script, and with images, fonts and fetches held to this site it
# sends nothing away either.
_EDITOR_STYLES = " 'unsafe-inline'"
_DATA = [(CSP, "default-src 'none'; frame-ancestors 'none'; sandbox"), *_ALWAYS]
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def allow_inline_styles() -> None:
    """This page is an editor: its libraries style elements inline."""
    g.csp_styles = _EDITOR_STYLES


def nonce() -> str:
    """This response's script nonce (made on first use: only pages ask for one)."""
    value: str | None = g.get("csp_nonce")
    if value is None:
        value = g.csp_nonce = secrets.token_urlsafe(18)
    return value


@lru_cache(maxsize=4)
def _swagger_policy(body: bytes) -> str:
    """The Swagger UI page's policy: its inline script allowed by its hash (the page is
    the same every time: computed once)."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(body)
    )
    return (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'"
    )


def _secure(response: Response) -> Response:
    # Headers.extend validates each value again; these were checked when built.
    if response.mimetype != "text/html":
        response.headers._list.extend(_DATA)
    elif request.endpoint == SWAGGER_UI:
        response.headers._list.extend([(CSP, _swagger_policy(response.get_data())), *_ALWAYS])
    else:
        policy = _PAGE_POLICY.format(nonce=nonce(), styles=g.get("csp_styles", ""))
        response.headers._list.extend([(CSP, policy), *_ALWAYS])
    return response


def attachment(filename: str) -> str:
    """A Content-Disposition that makes a browser save the response as ``filename``: only
    letters, digits, ``.``, ``-`` and ``_`` kept, ASCII for old clients and the UTF-8 name
    beside it (RFC 6266) where they differ (a process key may be any XML name)."""
    name = re.sub(r"[^\w.-]", "_", filename).lstrip(".") or "download"
    simple = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    options = {"filename": re.sub(r"[^\w.-]", "_", simple, flags=re.ASCII) or "download"}
    if options["filename"] != name:
        options["filename*"] = "UTF-8''" + quote(name, safe="")
    return dump_options_header("attachment", options)


def init_app(app: Flask) -> None:
    app.after_request(_secure)
    app.jinja_env.globals["csp_nonce"] = nonce

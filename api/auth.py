"""Who is calling: a bearer token names a user, or a session cookie (the pages, and the
API calls their scripts make) does; permissions are checked here."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar, cast

from flask import Flask, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask.wrappers import Request as FlaskRequest
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import Unauthorized

from api.context import actor, flow
from engine.errors import Forbidden
from engine.people import Actor, users

F = TypeVar("F", bound=Callable[..., Any])
SESSION_TOKEN = "sid"  # the cookie session's key for its row's token (engine/people/sign_in.py)


csrf = CSRFProtect()


def init_app(app: Flask) -> None:
    """Cookie sessions and CSRF protection, for the pages and for the API calls their
    scripts make with the session cookie."""
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = secret_key()
    app.session_interface = CookieSessions()
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # checked where sessions act
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # valid for the session
    # Flask's own defaults are in app.config already (SameSite None): set, not setdefault
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    secure = app.config.get(
        "TRADEFLOW_SECURE_COOKIES", os.environ.get("TRADEFLOW_SECURE_COOKIES", "auto")
    )
    if secure not in ("auto", "always", "never"):
        raise ValueError(f"TRADEFLOW_SECURE_COOKIES is auto, always or never, not {secure!r}")
    app.config["TRADEFLOW_SECURE_COOKIES"] = secure
    csrf.init_app(app)


def secret_key() -> str:
    """TRADEFLOW_SECRET_KEY, else a random key kept in var/secret_key (made once, 0600):
    every worker process and every restart signs sessions alike."""
    if os.environ.get("TRADEFLOW_SECRET_KEY"):
        return os.environ["TRADEFLOW_SECRET_KEY"]
    path = Path(os.environ.get("TRADEFLOW_SECRET_FILE", "var/secret_key"))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, but a request without the cookie (every API call
    with a bearer token) gets its empty session without Flask first building the cookie's
    signer: a share of a task completion's time, for nothing (docs/performance.md)."""

    def open_session(self, app: Flask, request: FlaskRequest) -> SecureCookieSession | None:
        if app.secret_key and (
            "HTTP_COOKIE" not in request.environ  # no cookies: not even parsed
            or not request.cookies.get(self.get_cookie_name(app))
        ):
            return self.session_class()
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        """``Secure`` as TRADEFLOW_SECURE_COOKIES says: ``auto`` (the default) when this
        request came over HTTPS (behind a proxy, as it tells: X-Forwarded-Proto is
        believed only with TRADEFLOW_PROXIES set), ``always`` or ``never``."""
        mode = str(app.config["TRADEFLOW_SECURE_COOKIES"])
        if mode == "auto":
            return request.is_secure
        return mode == "always"


def signed_in() -> Actor | None:
    """The person of this session, read afresh (roles change, accounts go): None once
    the session ended on the server (logout, revoke, disable, a new password)."""
    token = session.get(SESSION_TOKEN)
    if not token or not isinstance(token, str):
        return None
    person = users.session_holder(flow().db, token, flow().clock.now())
    if person is None:
        session.clear()
    return person


def authenticate() -> None:
    """Before every API request but health: a known, unrevoked token, else 401. The web
    pages' scripts call the API with their session cookie instead, and then every request
    that changes something must carry the session's CSRF token (X-CSRFToken)."""
    header = request.headers.get("Authorization", "")
    if not header and session.get(SESSION_TOKEN):
        person = signed_in()
        if person is None:
            raise Unauthorized("the session has ended: sign in again")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            csrf.protect()
        g.actor = person
        return
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send Authorization: Bearer <token>")
    found = users.bearer(flow().db, token.strip())
    if found is None:
        raise Unauthorized("the token is unknown or revoked")
    g.actor = found


def require(check: Callable[[Actor], bool], what: str) -> Callable[[F], F]:
    """Refuse with 403 unless ``check(actor)``; ``what`` says who may."""

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not check(actor()):
                raise Forbidden(f"only {what} may do this")
            return view(*args, **kwargs)

        return cast(F, guarded)

    return decorate


def owner_or_admin(a: Actor) -> bool:
    return a.is_process_owner or a.is_admin


def reads_everything(a: Actor) -> bool:
    return a.is_auditor or a.is_admin


def oversees(a: Actor) -> bool:
    """Process owners, auditors and admins: analytics, the dashboard, the audit search."""
    return a.is_process_owner or reads_everything(a)


def sends_messages(a: Actor) -> bool:
    return a.is_integration or a.is_admin


def starts_instances(a: Actor) -> bool:
    return bool(a.roles) or a.is_admin or a.is_integration or a.is_process_owner

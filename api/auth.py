"""Who is calling: a bearer token names a user; permissions are checked here."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, g, request, session
from werkzeug.exceptions import Unauthorized

from engine.errors import Forbidden
from engine.people import Actor, users
from engine.tradeflow import Tradeflow

F = TypeVar("F", bound=Callable[..., Any])
SESSION_TOKEN = "sid"  # the cookie session's key for its row's token (engine/people/sign_in.py)


def flow() -> Tradeflow:
    return cast(Tradeflow, current_app.extensions["tradeflow"])


def actor() -> Actor:
    return cast(Actor, g.actor)


def authenticate() -> None:
    """Before every API request but health: a known, unrevoked token, else 401. The web
    pages' scripts call the API with their session cookie instead, and then every request
    that changes something must carry the session's CSRF token (X-CSRFToken)."""
    header = request.headers.get("Authorization", "")
    if not header and session.get(SESSION_TOKEN):
        from api.web import csrf, signed_in  # the pages are optional to the API

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

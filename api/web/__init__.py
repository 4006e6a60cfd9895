"""The web pages: sign-in, the inbox, a task's form, an instance's diagram and trail.

Server-rendered (Jinja), in Chinese and English (Flask-Babel). People sign in with a
password (argon2, ``tradeflow users passwd``) and a session cookie; every form and every
script's POST carries a CSRF token. The pages' scripts call the same HTTP API as other
clients do, authenticated by the session (api/auth.py), so a page can do nothing the API
would refuse. Front-end libraries (form-js, bpmn-js) come from npm, bundled into
``static/dist`` by ``make install``: nothing loads from a CDN.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import Babel, gettext
from werkzeug.wrappers import Response

from api.auth import SESSION_TOKEN, csrf, signed_in
from api.context import flow
from api.views import check_can_read, check_can_see_task, latest_form
from engine import queues
from engine.clock import as_utc
from engine.commands import tasks as engine_tasks
from engine.errors import TaskNotFound, TooManyAttempts, TradeflowError
from engine.people import CANDIDATE, Actor, sign_in
from engine.queues import ClaimFilter, InboxQuery
from engine.storage import TaskState

LANGUAGES = {"zh": "中文", "en": "English"}
# what the pages call roles and audit events (English; zh in translations/)
ROLE_NAMES = {
    "market_development": "Market development",
    "order_execution": "Order execution",
    "documents_logistics": "Documents and logistics",
    "risk_compliance": "Risk and compliance",
    "finance": "Finance",
    "production": "Production",
    "quality": "Quality",
    "manager": "Manager",
}
EVENT_NAMES = {
    "instance_started": "started the process",
    "task_created": "task ready",
    "task_claimed": "claimed the task",
    "task_unclaimed": "gave back",
    "task_delegated": "handed over",
    "task_completed": "completed the task",
    "task_cancelled": "task cancelled",
    "message_received": "message received",
    "timer_fired": "time limit reached",
    "sla_breached": "past its time limit",
    "instance_completed": "process finished",
    "instance_cancelled": "process cancelled",
    "instance_failed": "process failed",
    "sign_in_locked": "sign-in locked",
}

blp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
                static_url_path="/static")  # fmt: skip
babel = Babel()


def _role_name(queue: str) -> str:
    """A role's name in the reader's language; a queue of one user, that user's name."""
    if queue.startswith(CANDIDATE):
        return queue.removeprefix(CANDIDATE)
    return str(gettext(ROLE_NAMES.get(queue, queue)))


def init_app(app: Flask) -> None:
    """The pages: their blueprint, translations and filters (sessions and CSRF are the
    API's too: api/auth.py installs them)."""
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", "web/translations")
    babel.init_app(app, locale_selector=_locale)
    app.register_blueprint(blp)
    app.jinja_env.filters["when"] = _when
    app.jinja_env.filters["role"] = _role_name
    app.jinja_env.filters["event"] = lambda kind: gettext(EVENT_NAMES.get(kind, kind))


def _locale() -> str:
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return str(chosen)
    return request.accept_languages.best_match(list(LANGUAGES)) or "zh"


def _when(value: datetime | None) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M UTC") if value else ""


@blp.before_request
def _who() -> Response | None:
    g.person = g.actor = signed_in()  # g.actor: the API's permission checks read it
    if g.person is None and request.endpoint not in ("web.login", "web.language", "web.static"):
        return redirect(url_for("web.login", next=request.full_path))
    if request.method == "POST" and request.endpoint != "web.static":
        csrf.protect()
    return None


@blp.app_context_processor
def _context() -> dict[str, Any]:
    return {"person": g.get("person"), "languages": LANGUAGES, "lang": _locale()}


@blp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "POST":
        name = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        try:
            done = (
                sign_in.sign_in(flow().db, name, password, request.remote_addr, flow().clock.now())
                if name and password
                else None
            )
        except TooManyAttempts as exc:
            wait = (exc.details["until"] - flow().clock.now()).total_seconds()
            minutes = max(1, math.ceil(wait / 60))
            flash(
                gettext(
                    "Too many failed sign-ins. Try again in %(minutes)d minutes.", minutes=minutes
                ),
                "error",
            )
            return render_template("login.html", username=name), 429
        if done is not None:
            chosen = session.get("lang")
            session.clear()  # a new session: no fixation
            session[SESSION_TOKEN] = done.token
            session["lang"] = done.locale or chosen or _locale()
            return redirect(_safe_next(request.args.get("next")))
        flash(gettext("Wrong name or password."), "error")
        return render_template("login.html", username=name), 401
    return render_template("login.html", username="")


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no open redirect)."""
    if target and urlsplit(target).netloc == "" and target.startswith("/"):
        return target if not target.startswith("//") else "/"
    return url_for("web.inbox")


@blp.post("/logout")
def logout() -> Response:
    token = session.get(SESSION_TOKEN)
    if isinstance(token, str):
        sign_in.sign_out(flow().db, token, flow().clock.now())  # every copy of the cookie
    session.clear()
    return redirect(url_for("web.login"))


@blp.get("/lang/<code>")
def language(code: str) -> Response:
    if code in LANGUAGES:
        session["lang"] = code
    return redirect(_safe_next(request.referrer and urlsplit(request.referrer).path))


@blp.get("/")
def inbox() -> str:
    person: Actor = g.person
    role = request.args.get("role")
    if role and role not in person.roles:
        role = None
    now = flow().clock.now()
    with flow().db.reading() as db:
        counts = {c.role: c for c in queues.counts(db, set(person.roles), now)}
        page = queues.inbox(
            db,
            person,
            InboxQuery(role=role, claim=ClaimFilter.ANY, sort="due", limit=200, count=False),
            now,
        )
    tasks = sorted(page.tasks, key=lambda t: not t.overdue)  # overdue first
    return render_template("inbox.html", tasks=tasks, counts=counts, role=role)


@blp.post("/tasks/<int:task_id>/claim")
def claim(task_id: int) -> Response:
    return _act(lambda: flow().claim(task_id, actor=g.person.name), gettext("Claimed."))


@blp.post("/tasks/<int:task_id>/unclaim")
def unclaim(task_id: int) -> Response:
    return _act(lambda: flow().unclaim(task_id, actor=g.person.name), gettext("Given back."))


def _act(step: Any, done: str) -> Response:
    try:
        step()
        flash(done, "ok")
    except TradeflowError as exc:
        flash(exc.message, "error")
    return redirect(_safe_next(request.referrer and urlsplit(request.referrer).path))


@blp.get("/tasks/<int:task_id>")
def task_page(task_id: int) -> str:
    try:
        task = flow().task(task_id)
    except TaskNotFound:
        abort(404)
    check_can_see_task(task)  # the API's rule
    form = latest_form(task.form_key)
    data = {}
    if task.state == TaskState.OPEN:
        data = engine_tasks.starting_data(flow().runtime, task_id)
    return render_template(
        "task.html",
        task=task,
        form=form,
        data=_form_data(form, data),
    )


def _form_data(form: dict[str, Any] | None, data: dict[str, Any]) -> dict[str, Any]:
    """The values the form's fields start from (the instance's variables of those names)."""
    if not form:
        return {}
    keys: set[str] = set()
    stack = list(form.get("components", []))
    while stack:
        component = stack.pop()
        if isinstance(component, dict):
            if component.get("key"):
                keys.add(component["key"])
            stack.extend(component.get("components") or [])
    return {k: v for k, v in data.items() if k in keys}


@blp.get("/instances/<int:instance_id>")
def instance_page(instance_id: int) -> str:
    check_can_read(instance_id)
    view = flow().view(instance_id)
    return render_template(
        "instance.html",
        instance=view.instance,
        xml=view.xml,
        markers={"done": view.done, "active": view.active, "overdue": view.overdue},
        variables=view.variables,
        open_tasks=view.open_tasks,
        history=view.history,
    )


from api.web import oversight  # noqa: E402,F401 - its pages join the blueprint

"""The ``tradeflow`` command line: database, users and roles, deployments, the server.

It sits beside the API, not inside the engine: it drives the engine the same way."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import click
from sqlalchemy.orm import Session

from cli import audit as audit_commands
from engine.audit import anchors
from engine.commands import messages
from engine.errors import DiagramInvalid, TradeflowError
from engine.execution import Limits
from engine.people import users
from engine.reporting import facts, rollups
from engine.tradeflow import Tradeflow

T = TypeVar("T")


def _flow() -> Tradeflow:
    return Tradeflow()


@click.group()
def main() -> None:
    """Tradeflow: BPMN processes for the foreign-trade department."""
    try:  # a limit set wrong in the environment is named, not a traceback
        Limits.from_env()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


main.add_command(audit_commands.verify)
main.add_command(audit_commands.audit_group)


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every schema migration (safe to repeat)."""
    flow = _flow()
    flow.upgrade()
    click.echo(f"database at {flow.db.engine.url.render_as_string(hide_password=True)} is current")


@db.command("measures")
def db_measures() -> None:
    """Make the KPIs' summaries again from the audit trail and the task rows (after a
    diagram renamed an element that a measure reads: engine/reporting/facts.py)."""
    flow = _flow()
    with flow.db.unbounded() as session:  # a long job: no statement or lock limit
        conn = session.connection()
        cases = facts.rebuild(conn)
        tasks = rollups.resum(conn, flow.clock.now())
    click.echo(f"case facts of {cases} instances replayed; {tasks} tasks of past weeks summed")


@main.group("users")
def users_group() -> None:
    """People and systems that use Tradeflow."""


@users_group.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, help="A role queue the user works in.")
@click.option("--admin", is_flag=True)
@click.option("--process-owner", is_flag=True, help="May deploy diagrams.")
@click.option("--auditor", is_flag=True, help="May read every history.")
@click.option("--integration", is_flag=True, help="A system such as the bank feed or the ERP.")
def users_add(
    name: str,
    roles: tuple[str, ...],
    admin: bool,
    process_owner: bool,
    auditor: bool,
    integration: bool,
) -> None:
    """Create or update a user; prints a new API token as the last line."""
    flags = users.Flags(admin, process_owner, auditor, integration)
    try:
        user, token = _flow().add_user(name, list(roles), flags)
    except TradeflowError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"user {user.name}: roles {', '.join(sorted(user.role_ids)) or '(none)'}")
    click.echo(token)


@users_group.command("passwd")
@click.argument("name")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="For scripts; without it the command asks (twice) and shows nothing.",
)
def users_passwd(name: str, password: str) -> None:
    """Set the password NAME signs in to the web pages with (stored as an argon2 hash)."""
    flow = _flow()
    try:
        hashed = users.hash_password(password)  # before the transaction: argon2 takes a while
        with flow.db.transaction() as session:
            users.set_password(session, name, hashed, flow.clock.now())
    except TradeflowError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"password of {name} set; their open sessions ended")


def _on_user(change: Callable[[Session, datetime], T]) -> T:
    """Run ``change`` in one transaction, a refusal as a plain message."""
    flow = _flow()
    try:
        with flow.db.transaction() as session:
            return change(session, flow.clock.now())
    except TradeflowError as exc:
        raise click.ClickException(exc.message) from exc


@users_group.command("revoke")
@click.argument("name")
def users_revoke(name: str) -> None:
    """Take NAME's credentials away at once: every token is revoked, every open web
    session ends and the password is cleared (`users add` issues a new token, `users
    passwd` sets a new password)."""
    count = _on_user(lambda session, now: users.revoke(session, name, now))
    click.echo(f"{count} token(s) of {name} revoked; sessions ended; password cleared")


@users_group.command("disable")
@click.argument("name")
def users_disable(name: str) -> None:
    """Stop NAME from doing anything until `users enable`: tokens, web sessions (ended
    now) and password are refused on the next request. Their history stays."""
    _on_user(lambda session, now: users.disable(session, name, now))
    click.echo(f"{name} disabled")


@users_group.command("enable")
@click.argument("name")
def users_enable(name: str) -> None:
    """Let a disabled user back in: their unrevoked tokens and password work again."""
    _on_user(lambda session, _: users.enable(session, name))
    click.echo(f"{name} enabled")


@users_group.command("list")
def users_list() -> None:
    """Every user with their roles and flags."""
    flow = _flow()
    with flow.db.reading() as session:
        for user in users.everyone(session):
            flags = [
                f
                for f in ("admin", "process_owner", "auditor", "integration")
                if getattr(user, f"is_{f}")
            ] + (["disabled"] if user.disabled_at is not None else [])
            click.echo(
                f"{user.name}\t{','.join(sorted(user.role_ids)) or '-'}\t{','.join(flags) or '-'}"
            )


@main.group("roles")
def roles_group() -> None:
    """Role queues."""


@roles_group.command("list")
def roles_list() -> None:
    flow = _flow()
    with flow.db.reading() as session:
        for role_id, holders in users.roles(session):
            click.echo(f"{role_id}\t{', '.join(holders) or '(nobody)'}")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--actor", default="cli", help="Who deploys (recorded in the audit trail).")
def deploy(files: tuple[str, ...], actor: str) -> None:
    """Deploy .bpmn, .dmn and .form files together; exit 1 with every lint problem."""
    contents = [(Path(f).name, Path(f).read_bytes()) for f in files]
    try:
        result = _flow().deploy(contents, actor=actor)
    except DiagramInvalid as exc:
        click.echo(exc.message, err=True)
        sys.exit(1)
    for item in result.definitions:
        state = "deployed" if item.created else "unchanged"
        click.echo(f"{item.key} v{item.version} {state}")
    for item in result.forms:
        state = "deployed" if item.created else "unchanged"
        click.echo(f"form {item.key} v{item.version} {state}")
    for item in result.decisions:
        state = "deployed" if item.created else "unchanged"
        click.echo(f"decision {item.key} v{item.version} {state}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)


@main.command("demo")
@click.option("--if-new", is_flag=True, help="Do nothing (exit 0) where the demo is set up.")
def demo_command(if_new: bool) -> None:
    """Deploy bpmn/ and forms/, add one demo user per role, start orders at several stages."""
    from cli import demo as content

    flow = _flow()
    flow.upgrade()
    with flow.db.reading() as session:
        if users.by_name(session, next(iter(content.PEOPLE)), required=False) is not None:
            if if_new:
                click.echo("the demo is set up already (a new token: tradeflow users add NAME)")
                return
            raise click.ClickException("the demo is already set up in this database")
    try:
        tokens = content.people(flow)
        flow.deploy(content.shipped_files(), actor="process.owner")
        click.echo("Orders and leads, and what each waits for:")
        for order in content.ORDERS:
            content.run_order(flow, order, click.echo)
    except TradeflowError as exc:
        raise click.ClickException(f"the demo could not be set up: {exc.message}") from exc
    click.echo(
        f"Web pages: http://127.0.0.1:8000/ — sign in as any of them with the password"
        f" '{content.PASSWORD}'. API: Authorization: Bearer <token>:"
    )
    for name, token in tokens.items():
        click.echo(f"  {name:14s} {content.describe(name):34s} {token}")


@main.group("messages")
def messages_group() -> None:
    """Messages from outside (bank feed, ERP)."""


@messages_group.command("list")
def messages_list() -> None:
    """Messages not delivered: kept for an instance yet to wait, or expired (exit 1 if any)."""
    flow = _flow()
    messages.expire(flow.runtime)
    pending = messages.undelivered(flow.runtime)
    for m in pending:
        key = m.business_key or ", ".join(f"{k}={v}" for k, v in m.correlation.items())
        click.echo(
            f"{m.id}\t{m.status.value}\t{m.name}\t{key}\tfrom {m.sender}"
            f"\texpires {m.expires_at:%Y-%m-%d %H:%M}"
        )
    sys.exit(1 if any(m.status.value == "expired" for m in pending) else 0)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, type=int, show_default=True)
@click.option(
    "--workers",
    default=2,
    type=int,
    show_default=True,
    help="Processes; each serves --threads requests at once.",
)
@click.option(
    "--threads",
    default=1,
    type=int,
    show_default=True,
    help="More threads mostly contend for the interpreter (bench/http_completions.py).",
)
@click.option(
    "--scheduler/--no-scheduler",
    default=True,
    show_default=True,
    help="Fire timers in the server's processes (else run `tradeflow worker` beside it).",
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="A line per request on standard output (a proxy in front usually keeps these).",
)
@click.option(
    "--health-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Also answer GET /health on this port, from a thread of each worker's own.",
)
@click.option(
    "--health-host",
    default="127.0.0.1",
    show_default=True,
    help="The address the --health-port answers on.",
)
def serve(
    host: str,
    port: int,
    workers: int,
    threads: int,
    scheduler: bool,
    access_log: bool,
    health_port: int | None,
    health_host: str,
) -> None:
    """Run the HTTP service under granian, after bringing the schema up to date; its
    worker processes also fire timers, unless --no-scheduler."""
    if health_port == port:
        raise click.BadParameter("must be another port than --port", param_hint="--health-port")
    _metrics_directory()  # before prometheus_client is imported (by the app)
    from cli.server import run

    flow = _flow()
    _anchoring()  # a wrong setting stops here, not in every worker
    flow.upgrade()
    flow.db.dispose()  # each worker opens its own connections
    click.echo(
        f"Tradeflow on http://{host}:{port}/ (sign in; `tradeflow users passwd NAME` sets a"
        f" password) and its API on http://{host}:{port}/api/v1/docs (Authorization: Bearer"
        f" <token from `tradeflow users add`>)"
    )
    run(host, port, workers, threads, scheduler, access_log, health_port, health_host)


def _anchoring() -> anchors.Setting | None:
    """Where and how often the scheduler anchors the audit trail (engine/audit/anchors.py)."""
    try:
        return anchors.configured()
    except TradeflowError as exc:
        raise click.ClickException(exc.message) from exc


def _metrics_directory() -> None:
    """Where worker processes keep their metric samples, emptied for this run."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        for stale in Path(path).glob("*.db"):
            stale.unlink()
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tradeflow-metrics-")


@main.command()
@click.option("--sweep", default=1.0, show_default=True, help="Seconds between sweeps.")
def worker(sweep: float) -> None:
    """Fire timers only, no HTTP: beside `tradeflow serve --no-scheduler`, or to add
    capacity (several processes share the due timers, each fired once)."""
    from engine.runtime import LiveWorkflows
    from engine.timers.scheduler import Scheduler, Timers  # see engine/timers/__init__.py

    flow = _flow()
    anchoring = _anchoring()  # a wrong setting stops here, before anything runs
    flow.upgrade()
    # room to restore the next seconds' due instances ahead of time (Timers.preload)
    flow.runtime.live = LiveWorkflows(size=4096)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    scheduler = Scheduler(Timers(flow.runtime), sweep_seconds=sweep, anchoring=anchoring)
    scheduler.start()
    click.echo(f"tradeflow worker: firing timers (sweep every {sweep:g} s); Ctrl-C stops")
    if anchoring is not None:
        every = anchoring.every.total_seconds() / 60
        target = anchoring.target.describe()
        click.echo(f"tradeflow worker: anchoring the audit trail to {target} every {every:g} min")
    stop.wait()
    scheduler.shutdown()
    click.echo("tradeflow worker: stopped")

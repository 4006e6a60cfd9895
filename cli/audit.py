"""``tradeflow verify`` and ``tradeflow audit anchor``: the audit trail checked, and its
heads anchored outside the database (engine/audit/verification.py, engine/audit/anchors.py)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click
from sqlalchemy import select

from engine.audit import anchor_log, anchors, verification
from engine.errors import AnchorFailed, TradeflowError
from engine.storage import AuditAnchor
from engine.tradeflow import Tradeflow


def _flow() -> Tradeflow:
    from cli import _flow as flow  # the command's one way to its database

    return flow()


@click.command()
@click.argument("stream", required=False)
@click.option(
    "--anchors",
    "anchor_file",
    type=click.Path(exists=True, dir_okay=False),
    help="An anchor file to hold the trail against (default: TRADEFLOW_AUDIT_ANCHOR, "
    "when it names a file).",
)
@click.option("--no-anchors", is_flag=True, help="Check the trail and its heads only.")
def verify(stream: str | None, anchor_file: str | None, no_anchors: bool) -> None:
    """Check the audit trail: every hash chain, each chain's end against the head the
    database records, and the events anchors pinned outside it; exit 1 on any problem."""
    flow = _flow()
    try:
        setting = None if no_anchors else anchors.configured()
        log, note = _anchor_log(flow, setting, anchor_file, no_anchors)
    except TradeflowError as exc:
        raise click.ClickException(exc.message) from exc
    pins = log.pins if log is not None else None
    with verification.snapshot(flow.db) as session:
        if stream:
            report = verification.TrailReport()
            report.add(verification.verify_stream(session, stream, pins))
        else:
            report = verification.verify_trail(session, pins)
    for result in report.streams:
        if result.ok:
            click.echo(f"{result.stream}: {result.events} events, intact")
        for finding in result.findings:
            click.echo(str(finding))
    problems = len(report.findings)
    if log is not None:
        for name, seq, first, then in log.conflicts:
            if stream is None or name == stream:
                problems += 1
                click.echo(
                    f"{name}: broken at seq {seq}: anchors {first} and {then} pinned it with "
                    "different hashes: rewritten between them"
                )
        for problem in [*log.problems, *_stale(flow, setting, log)]:
            problems += 1
            click.echo(f"anchors: {problem}")
    checked = "; ".join(verification.CHECKS)
    count = f"{len(report.streams)} stream(s), {report.events} events"
    click.echo(f"checked {count}: {checked}")
    click.echo(f"anchors: {note}")
    if log is not None and log.last is not None:
        click.echo(
            f"anchors: {report.pinned} anchored events found as anchored. Nothing before "
            f"the last anchor ({log.last.at}) can change unnoticed while the anchor file is "
            "out of the database owner's reach; what came after it rests on the heads the "
            "database records."
        )
    click.echo("result: intact" if not problems else f"result: {problems} problem(s)")
    sys.exit(1 if problems else 0)


def _stale(
    flow: Tradeflow, setting: anchors.Setting | None, log: anchor_log.AnchorLog
) -> list[str]:
    """Anchors that stopped coming: the scheduler stopped, or someone holds them back."""
    if setting is None or log.last is None:
        return []
    try:
        at = datetime.fromisoformat(log.last.at)
    except ValueError:
        return [f"anchor {log.last.number}: its time {log.last.at!r} cannot be read"]
    if flow.clock.now() - at <= 2 * setting.every:
        return []
    every = setting.every.total_seconds() / 60
    return [
        f"the last anchor was written at {log.last.at}, more than twice {anchors.EVERY_ENV} "
        f"({every:g} min) ago: anchoring stopped, or is being held back"
    ]


def _anchor_log(
    flow: Tradeflow, setting: anchors.Setting | None, path: str | None, skip: bool
) -> tuple[anchor_log.AnchorLog | None, str]:
    """The anchor file to check against, and a line saying what is (not) checked."""
    if skip:
        return None, "not checked (--no-anchors)"
    if path is None:
        if setting is None:
            return None, f"none configured ({anchors.TARGET_ENV}), not checked"
        if not isinstance(setting.target, anchors.FileTarget):
            return None, (
                f"they go to {setting.target.describe()}: pass --anchors FILE with the "
                "receiver's copy to check them; not checked"
            )
        path = str(setting.target.path)
        if not Path(path).exists():
            with flow.db.reading() as session:
                made = session.scalar(select(AuditAnchor.made)) or 0
            if made:
                raise AnchorFailed(
                    f"the database records {made} anchor(s) written, but {path} does not exist"
                )
            return None, f"none written yet ({path} does not exist), not checked"
    log = anchor_log.read_log(path)
    if log.last is None:
        return log, f"{path} holds no anchor"
    return log, (
        f"{log.anchors} read from {path} (anchor {log.first.number if log.first else '?'} "
        f"to {log.last.number}, the last at {log.last.at}, listing {log.last.streams} "
        f"streams); every event they pin was looked for"
    )


@click.group("audit")
def audit_group() -> None:
    """The audit trail's anchors, outside the database."""


@audit_group.command("anchor")
@click.option(
    "--to",
    "to",
    help=f"A file path or an http(s) URL (default: {anchors.TARGET_ENV}).",
)
@click.option(
    "--full", is_flag=True, help="List every head, not only those that moved since the last."
)
def anchor(to: str | None, full: bool) -> None:
    """Write the chains' heads, hashed together, outside the database: a later `tradeflow
    verify --anchors` proves nothing before it was rewritten. Exit 1 if the heads went
    back since the last anchor (it is written all the same)."""
    flow = _flow()
    try:
        if to:
            target = anchors.target_of(to)
        else:
            setting = anchors.configured()
            if setting is None:
                raise AnchorFailed(f"{anchors.TARGET_ENV} is not set: pass --to")
            target = setting.target
        done = anchors.anchor(flow.db, flow.clock, target, full=full)
    except TradeflowError as exc:
        raise click.ClickException(exc.message) from exc
    assert done is not None  # asked for now: written, or raised
    record = done.record
    listed = "every head" if record.full else f"{len(record.heads)} head(s) that moved"
    click.echo(
        f"anchor {record.number} written to {done.target}: {record.streams} streams, "
        f"digest {record.digest} ({listed})"
    )
    for warning in done.warnings:
        click.echo(f"warning: {warning}", err=True)
    sys.exit(1 if done.warnings else 0)

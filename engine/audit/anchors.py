"""Anchors: the audit trail's heads, written to a place outside the database.

Whoever owns the database can rewrite a chain and every later hash, and the head its
instance row records, and verify alone would find nothing wrong. An anchor takes that
away for everything before it: it lists every stream's head (name, seq, hash), with the
SHA-256 of that listing, and goes where the database's owner cannot reach, an append-only
file or a webhook (``TRADEFLOW_AUDIT_ANCHOR``). ``tradeflow verify --anchors FILE`` then
checks that every anchored event is still there with its anchored hash, and that no
anchored stream vanished.

The record's format is engine/audit/anchor_log.py's.

One process writes an anchor at a time: it claims the ``audit_anchor`` row in a short
transaction (a compare-and-set, on SQLite and PostgreSQL alike), reads the heads in a read
transaction, writes outside the database holding no lock, then records what it wrote.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.orm import Session

from engine.audit.anchor_log import Heads, Record, digest, last_record
from engine.audit.trail import canonical_at
from engine.audit.verification import recorded_heads, snapshot
from engine.clock import Clock, as_utc
from engine.errors import AnchorFailed
from engine.storage import AuditAnchor, AuditAnchored, Database

TARGET_ENV = "TRADEFLOW_AUDIT_ANCHOR"
EVERY_ENV = "TRADEFLOW_AUDIT_ANCHOR_EVERY"  # minutes
DEFAULT_EVERY = timedelta(hours=1)
WEBHOOK_TIMEOUT = 10.0  # seconds
# a claim outlives a webhook's timeout and the writes around it; a process that died
# holding one holds it no longer than this
CLAIM = timedelta(minutes=5)
_ROW = 1  # audit_anchor's one row


class Target(Protocol):
    """Where anchors go: outside the database."""

    reads_back: bool  # whether last() can tell what the target holds

    def describe(self) -> str: ...

    def last(self) -> Record | None:
        """The last anchor it holds, for a target that can be read back; else None."""
        ...

    def write(self, record: Record) -> None:
        """Store the record durably, or raise AnchorFailed."""
        ...


class FileTarget:
    """An append-only file of JSON lines, created 0600; each line is fsynced."""

    reads_back = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def describe(self) -> str:
        return str(self.path)

    def last(self) -> Record | None:
        try:
            return last_record(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AnchorFailed(f"cannot read the anchor file {self.path}: {exc}") from exc

    def write(self, record: Record) -> None:
        line = record.line()
        created = not self.path.exists()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise AnchorFailed(f"cannot open the anchor file {self.path}: {exc}") from exc
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # a line cut short by a crash stays a line of its own
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as exc:
            raise AnchorFailed(f"cannot write the anchor file {self.path}: {exc}") from exc
        finally:
            os.close(fd)
        if created:  # the new file's entry in its directory must survive a crash too
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would follow a 301/302/303 as a GET without the body and call it a success
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookTarget:
    """An HTTP(S) endpoint that takes each record as a JSON POST; 2xx means stored."""

    reads_back = False

    def __init__(self, url: str, timeout: float = WEBHOOK_TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirects)

    def describe(self) -> str:
        # no user, password or query: they may carry the receiver's credentials
        parts = urllib.parse.urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"

    def last(self) -> Record | None:
        return None

    def write(self, record: Record) -> None:
        request = urllib.request.Request(
            self.url,
            data=record.line().rstrip(b"\n"),
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "tradeflow-anchor"},
        )
        where = self.describe()
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = response.status
                response.read(65536)
        except urllib.error.HTTPError as exc:
            raise AnchorFailed(f"the webhook {where} answered {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AnchorFailed(f"the webhook {where} could not be reached: {reason}") from exc
        if not 200 <= status < 300:
            raise AnchorFailed(f"the webhook {where} answered {status}")


def target_of(value: str) -> Target:
    """A file path, or an http(s) URL; anything else is refused."""
    if value.startswith(("http://", "https://")):
        if not urllib.parse.urlsplit(value).hostname:
            raise AnchorFailed(f"{TARGET_ENV}: {value!r} names no host")
        return WebhookTarget(value)
    if "://" in value:
        raise AnchorFailed(f"{TARGET_ENV}: {value!r}: a file path, or an http:// or https:// URL")
    return FileTarget(value)


@dataclass(frozen=True)
class Setting:
    target: Target
    every: timedelta


def configured(environ: Mapping[str, str] | None = None) -> Setting | None:
    """Where and how often to anchor, from the environment; None when not configured.
    A setting that cannot be right raises AnchorFailed (the service does not start)."""
    environ = os.environ if environ is None else environ
    value = environ.get(TARGET_ENV, "").strip()
    if not value:
        return None
    every = DEFAULT_EVERY
    raw = environ.get(EVERY_ENV, "").strip()
    if raw:
        try:
            minutes = float(raw)
        except ValueError:
            minutes = 0.0
        if not minutes > 0 or minutes > 525_600:  # not NaN, and at most a year
            raise AnchorFailed(f"{EVERY_ENV}: {raw!r} is not a number of minutes (1 to 525600)")
        every = timedelta(minutes=minutes)
    return Setting(target_of(value), every)


@dataclass(frozen=True)
class Anchored:
    """An anchor written: its record, where it went, and what looked wrong meanwhile."""

    record: Record
    target: str
    warnings: list[str]


def anchor(
    db: Database,
    clock: Clock,
    target: Target,
    *,
    full: bool = False,
    every: timedelta | None = None,
) -> Anchored | None:
    """Write an anchor of the heads as they are now. With ``every`` (the scheduler), only
    if the last one is that old, and None if not or if another process is at it; without
    (a person asking), now, and AnchorFailed if another process is at it."""
    now = as_utc(clock.now())
    if not _claim(db, now, every):
        if every is not None:
            return None
        raise AnchorFailed("another process is writing an anchor; try again in a few minutes")
    try:
        with snapshot(db) as session:
            heads = {s: h for s, h in recorded_heads(session).items() if h[0] > 0}
            base = {s: (seq, h) for s, seq, h in session.execute(select(AuditAnchored.__table__))}
            state = session.execute(
                select(AuditAnchor.made, AuditAnchor.digest).where(AuditAnchor.id == _ROW)
            ).one()
        record, warnings = _compose(heads, base, state.made, state.digest, target, full, now)
        target.write(record)
        with db.transaction() as session:
            _record(session, record, now, base)
    except BaseException:
        # give the claim back (if the database is gone too, it lapses by itself)
        with suppress(Exception), db.transaction() as session:
            session.execute(
                update(AuditAnchor).where(AuditAnchor.id == _ROW).values(claimed_until=None)
            )
        raise
    return Anchored(record, target.describe(), warnings)


def _claim(db: Database, now: datetime, every: timedelta | None) -> bool:
    """Take the anchor row for a while; a short write transaction, no I/O inside."""
    taken = or_(AuditAnchor.claimed_until.is_(None), AuditAnchor.claimed_until <= now)
    condition = [AuditAnchor.id == _ROW, taken]
    if every is not None:
        due = now - every
        condition.append(or_(AuditAnchor.anchored_at.is_(None), AuditAnchor.anchored_at <= due))
    with db.transaction() as session:
        claimed = session.execute(
            update(AuditAnchor).where(*condition).values(claimed_until=now + CLAIM)
        )
        return bool(claimed.rowcount)  # type: ignore[attr-defined]


def _compose(
    heads: dict[str, tuple[int, str]],
    base: dict[str, tuple[int, str]],
    made: int,
    last_digest: str | None,
    target: Target,
    full: bool,
    now: datetime,
) -> tuple[Record, list[str]]:
    """The next record: the heads that moved since the last anchor, or all of them when
    the last one's listing is not at hand (the first anchor, a new file, or a base that
    does not add up to the digest the database says was written last)."""
    last = target.last()
    prev = last.digest if last is not None else last_digest
    number = (last.number if last is not None else made) + 1
    base_holds = made > 0 and last_digest is not None and digest(base) == last_digest
    if target.reads_back:  # the file's last anchor must be the one the base is of
        base_holds = base_holds and last is not None and last.digest == last_digest
    warnings = _went_back(heads, base) if base_holds else []
    if full or not base_holds:
        record = Record(number, canonical_at(now), digest(heads), prev, len(heads), True, heads)
    else:
        moved = {s: h for s, h in heads.items() if base.get(s) != h}
        gone = sorted(base.keys() - heads.keys())
        record = Record(
            number, canonical_at(now), digest(heads), prev, len(heads), False, moved, gone
        )
    return record, warnings


def _went_back(heads: Heads, base: Heads) -> list[str]:
    """What no unit of work does: a head that went back, changed in place, or vanished
    since the last anchor. ``tradeflow verify --anchors`` reports it against the trail."""
    found = []
    for stream, (seq, hash_) in sorted(base.items()):
        now = heads.get(stream)
        if now is None:
            found.append(f"{stream}: anchored at seq {seq}, now gone from the database")
        elif now[0] < seq:
            found.append(f"{stream}: anchored at seq {seq}, its head is now seq {now[0]}")
        elif now[0] == seq and now[1] != hash_:
            found.append(f"{stream}: seq {seq} anchored with another hash than it has now")
    return found


def _record(session: Session, record: Record, now: datetime, base: Heads) -> None:
    """What was written, so the next anchor lists only what moves meanwhile."""
    session.execute(
        update(AuditAnchor)
        .where(AuditAnchor.id == _ROW)
        .values(made=record.number, anchored_at=now, digest=record.digest, claimed_until=None)
    )
    if record.full:
        session.execute(delete(AuditAnchored))
        stale: Iterable[str] = ()
    else:
        stale = [*(s for s in record.heads if s in base), *record.gone]
    for chunk in _chunks(list(stale), 500):
        session.execute(delete(AuditAnchored).where(AuditAnchored.stream.in_(chunk)))
    rows = [{"stream": s, "seq": seq, "hash": h} for s, (seq, h) in record.heads.items()]
    for chunk in _chunks(rows, 5000):
        session.execute(insert(AuditAnchored), chunk)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    return (items[i : i + size] for i in range(0, len(items), size))

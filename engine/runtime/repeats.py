"""A request sent again under its sender's own key (HTTP's ``Idempotency-Key``): a client
that lost the first answer (a timeout, a dropped connection, a commit whose answer never
arrived) sends the same request again and gets the first answer, and nothing changes.

The key is claimed as the unit of work begins and its answer written before the unit
commits, in the same transaction: a start that committed has its answer kept with it.
Two copies at once meet on the key's unique index (PostgreSQL: the second waits for the
first's commit, then fails and, sent again by its command, finds the answer; SQLite has
one writer at a time). What was asked is kept as a digest, so the same key with another
request is refused, naming the header. A key answers for ``KEPT``; then it is a new
request (and the scheduler drops the key).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine.clock import as_utc
from engine.errors import AnsweredBefore, Invalid
from engine.storage import RequestKey

HEADER = "Idempotency-Key"
MAX_KEY = 255
KEPT = timedelta(days=7)  # how long a key answers; its repeat after that is a new request
KEY_CONSTRAINT = "ux_request_key_sender_key"  # a copy running beside this one met it


@dataclass(frozen=True)
class Once:
    """A request under its sender's key: what it asks, and how its result is answered
    (``answer``: the result as the client receives it; ``status``: kept with it)."""

    sender: str
    key: str
    asked: str
    status: int
    answer: Callable[[Any], dict[str, Any]]


def once(
    sender: str,
    key: str | None,
    asked: tuple[Any, ...],
    *,
    status: int,
    answer: Callable[[Any], dict[str, Any]],
) -> Once | None:
    """The request under ``key`` (None without one). ``asked``: what it asks, all of it
    (the command, its target and what it carries), compared as JSON: ``true`` is not
    ``1``."""
    if key is None:
        return None
    key = key.strip()
    if not 0 < len(key) <= MAX_KEY:
        why = f"1 to {MAX_KEY} characters"
        raise Invalid(f"an idempotency key has {why}", errors={HEADER: [why]})
    text = json.dumps(asked, sort_keys=True, separators=(",", ":"), default=str)
    return Once(sender, key, hashlib.sha256(text.encode()).hexdigest(), status, answer)


def claim(session: Session, request: Once, now: datetime) -> RequestKey:
    """The key's row for this unit; raises ``AnsweredBefore`` with the first answer if
    the key was used for the same request, ``Invalid`` if for another."""
    first = session.scalars(
        select(RequestKey).where(RequestKey.sender == request.sender, RequestKey.key == request.key)
    ).first()
    if first is not None and as_utc(first.created_at) <= now - KEPT:
        session.delete(first)  # past its time: this is a new request
        session.flush()
        first = None
    if first is not None:
        if first.asked != request.asked:
            raise Invalid(
                f"idempotency key '{request.key}' was sent before with another request",
                errors={HEADER: ["used before for another request"]},
            )
        raise AnsweredBefore(json.loads(first.answer or "{}"), first.status)
    row = RequestKey(
        sender=request.sender,
        key=request.key,
        asked=request.asked,
        status=request.status,
        answer=None,
        created_at=now,
    )
    session.add(row)
    session.flush()  # on the unique index now: a copy running beside this one waits here
    return row


def answer(row: RequestKey, request: Once, result: Any) -> None:
    """Keep the answer to the request with its key (before the unit commits)."""
    # as JSON text, not a JSON column: PostgreSQL's jsonb would give 1e16 back as an
    # integer and the keys in its own order; the repeat gets the first answer as it was
    row.answer = json.dumps(request.answer(result), separators=(",", ":"), default=str)


FORGET_BATCH = 1000  # keys dropped per transaction


def forget(session: Session, before: datetime, limit: int = FORGET_BATCH) -> int:
    """Drop up to ``limit`` keys made before ``before``; how many went (the scheduler
    calls it a transaction at a time; a key past its time answers no more anyway:
    ``claim``)."""
    old = select(RequestKey.id).where(RequestKey.created_at < before).limit(limit)
    ids = list(session.scalars(old))
    if ids:
        session.execute(delete(RequestKey).where(RequestKey.id.in_(ids)))
    return len(ids)

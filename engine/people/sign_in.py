"""Signing in to the web pages: passwords, the throttle on guessing them, and sessions.

Three rules shape it:
- argon2 runs outside every transaction. On SQLite a transaction that writes holds the
  one write lock; a wrong guess hashed inside it made every employee's command wait.
- Every attempt is counted before its password is hashed, per account and per address,
  so neither a stream of guesses nor a burst of them in parallel gets more than its
  share of hashes; a locked account or address is refused without hashing at all.
- A session is a row: the cookie carries a random token, the database its SHA-256.
  Logout, ``users revoke``, ``users disable`` and a new password end the rows, and with
  them every copy of the cookie, on the next request.
"""

from __future__ import annotations

import functools
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy import Connection, Table, delete, insert, select, update
from sqlalchemy.orm import Session

from engine.audit import SIGN_IN_STREAM, AuditTrail, EventKind
from engine.clock import as_utc
from engine.errors import TooManyAttempts
from engine.people import users
from engine.people.users import PASSWORDS, Actor
from engine.storage import Database, SignInFailure, User, WebSession, locks

ADDRESS_CHARS = 64  # an IPv6 address with its zone, and then some


@dataclass(frozen=True)
class Throttle:
    """How many failed sign-ins a window may hold before the next attempt is refused
    for ``lockout``: per account (guessing one person's password) and per address
    (guessing many people's, or locking them all out)."""

    account_limit: int = 5
    address_limit: int = 20
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)


def session_lifetime() -> timedelta:
    """How long a sign-in lasts: TRADEFLOW_SESSION_HOURS, else 12 (a working day)."""
    return timedelta(hours=float(os.environ.get("TRADEFLOW_SESSION_HOURS", "12")))


@dataclass(frozen=True)
class SignedIn:
    person: Actor
    token: str  # the session's cookie value; only its digest is stored
    locale: str | None


@functools.cache
def _dummy_hash() -> str:
    """Verified against for unknown names, so they cost what a wrong password costs."""
    return PASSWORDS.hash("an unknown user's password is never this")


def sign_in(
    db: Database,
    name: str,
    password: str,
    address: str | None,
    now: datetime,
    throttle: Throttle | None = None,
) -> SignedIn | None:
    """A new session if ``password`` is ``name``'s; None if not (an unknown name, a
    disabled account or no password set answer the same, after the same work). Raises
    TooManyAttempts while the account or the address is locked out."""
    throttle = throttle or Throttle()
    # the address first: while it is locked, nothing more is counted (or stored) for
    # the names it tries; a name no account could have is no account to count
    keys = [(f"address:{address[:ADDRESS_CHARS]}", throttle.address_limit)] if address else []
    account_key = f"account:{name}" if users.valid_name(name) else None
    if account_key is not None:
        keys.append((account_key, throttle.account_limit))
    with db.transaction() as session:  # short: no hashing in here
        locked = _count_attempt(session, keys, address, now, throttle)
    if locked is not None:  # counted and committed, but not heard
        until, which = locked
        raise TooManyAttempts("too many failed sign-ins; try again later", until=until, keys=which)
    with db.reading() as session:
        user = session.scalars(select(User).where(User.name == name)).first()
        stored = user.password_hash if user is not None and user.disabled_at is None else None
        user_id = user.id if user is not None else None
    try:
        PASSWORDS.verify(stored or _dummy_hash(), password)
    except (VerifyMismatchError, InvalidHashError):
        return None
    if stored is None or user_id is None or account_key is None:
        return None
    rehashed = PASSWORDS.hash(password) if PASSWORDS.check_needs_rehash(stored) else None
    token = secrets.token_urlsafe(32)
    with db.transaction() as session:
        user = session.get(User, user_id)
        # the account may have changed while the hash ran: a new password, a revoke
        if user is None or user.disabled_at is not None or user.password_hash != stored:
            return None
        if rehashed is not None:
            user.password_hash = rehashed
        _forgive(session, account_key, keys[0][0] if address else None)
        conn = session.connection()
        _prune_sessions(conn, user.id, now)
        conn.execute(
            insert(WebSession).values(
                token_sha256=users.token_digest(token),
                user_id=user.id,
                created_at=now,
                expires_at=now + session_lifetime(),
                address=address[:ADDRESS_CHARS] if address else None,
            )
        )
        return SignedIn(users.identity(session, user.name), token, user.locale)


def _count_attempt(
    session: Session,
    keys: list[tuple[str, int]],
    address: str | None,
    now: datetime,
    throttle: Throttle,
) -> tuple[datetime, list[str]] | None:
    """Count this attempt as a failure until it succeeds. If a key is locked, or this
    attempt goes past a key's limit (which locks it, and says so in the trail): until
    when, and which keys. Rows whose window and lockout have passed are dropped, so
    what is stored stays bounded by the attempts of one window."""
    _drop_stale(session, now, throttle)
    locked: list[tuple[str, datetime]] = []
    newly: list[tuple[str, int, datetime]] = []
    for key, limit in keys:
        if locked:  # the address is locked: the name it tries is not counted
            break
        row = _failure_row(session, key, now)
        until = as_utc(row.locked_until) if row.locked_until is not None else None
        if until is not None and until > now:
            locked.append((key, until))
            continue
        if until is not None or as_utc(row.first_at) <= now - throttle.window:
            row.failures, row.first_at, row.locked_until = 0, now, None  # a new window
        row.failures += 1
        if row.failures > limit:
            row.locked_until = now + throttle.lockout
            locked.append((key, row.locked_until))
            newly.append((key, row.failures - 1, row.locked_until))
    session.flush()
    if newly:
        trail = AuditTrail(session)
        for key, failures, until in newly:
            kind, _, who = key.partition(":")
            trail.append(
                SIGN_IN_STREAM,
                EventKind.SIGN_IN_LOCKED,
                at=now,
                actor="anonymous",  # whoever tried: not the account's owner
                element_id=key[:255],
                data={kind: who, "failures": failures, "until": until, "address": address},
            )
        trail.write()
    if not locked:
        return None
    return max(moment for _, moment in locked), [key for key, _ in locked]


def _drop_stale(session: Session, now: datetime, throttle: Throttle) -> None:
    session.execute(
        delete(SignInFailure).where(
            SignInFailure.first_at < now - throttle.window,
            (SignInFailure.locked_until.is_(None)) | (SignInFailure.locked_until < now),
        )
    )


def _failure_row(session: Session, key: str, now: datetime) -> SignInFailure:
    """The key's row, made if new, and locked for this transaction (PostgreSQL; SQLite
    has one writer at a time anyway)."""
    table: Table = SignInFailure.__table__  # type: ignore[assignment]
    locks.insert_missing(session, table, {"key": key, "failures": 0, "first_at": now}, ["key"])
    query = select(SignInFailure).where(SignInFailure.key == key).with_for_update()
    return session.scalars(query).one()


def _forgive(session: Session, account_key: str, address_key: str | None) -> None:
    """A sign-in that succeeded was no failure: the account starts afresh, the address
    takes back this one attempt (its other failures stand)."""
    session.execute(delete(SignInFailure).where(SignInFailure.key == account_key))
    if address_key is not None:
        session.execute(
            update(SignInFailure)
            .where(SignInFailure.key == address_key, SignInFailure.failures > 0)
            .values(failures=SignInFailure.failures - 1)
        )


def _prune_sessions(conn: Connection, user_id: int, now: datetime) -> None:
    """Rows of the user's sessions that ended or expired a day ago or more."""
    day_ago = now - timedelta(days=1)
    conn.execute(
        delete(WebSession).where(
            WebSession.user_id == user_id,
            (WebSession.expires_at < day_ago) | (WebSession.ended_at < day_ago),
        )
    )


def sign_out(db: Database, token: str, now: datetime) -> None:
    """End this session on the server: a copy of its cookie no longer works."""
    with db.transaction() as session:
        session.execute(
            update(WebSession)
            .where(
                WebSession.token_sha256 == users.token_digest(token),
                WebSession.ended_at.is_(None),
            )
            .values(ended_at=now)
        )

"""Users, their roles and API tokens. Only a SHA-256 of a token is ever stored."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import FromClause, bindparam, func, select, update
from sqlalchemy.orm import Session

from engine.errors import Invalid, UserNotFound
from engine.storage import (
    CANDIDATE,
    ApiToken,
    Database,
    Prepared,
    Role,
    User,
    UserRole,
    WebSession,
)

ROLE_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
TOKEN_PREFIX = "tf_"


def valid_name(name: str) -> bool:
    """Whether ``name`` could be a user's (what ``add`` accepts)."""
    return _USER_NAME.fullmatch(name) is not None


@dataclass(frozen=True)
class Flags:
    admin: bool = False
    process_owner: bool = False
    auditor: bool = False
    integration: bool = False


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ensure_role(session: Session, role_id: str, now: datetime) -> Role:
    if not ROLE_ID.match(role_id):
        raise Invalid(f"role id '{role_id}' must be lower_snake_case (a-z, 0-9, _)")
    role = session.get(Role, role_id)
    if role is None:
        role = Role(id=role_id, created_at=now)
        session.add(role)
    return role


def add_user(
    session: Session, name: str, roles: list[str], flags: Flags, now: datetime
) -> tuple[User, str]:
    """Create or update a user (roles are added, flags set) and issue a new token."""
    if not valid_name(name):
        raise Invalid(f"user name '{name}' is not allowed (letters, digits, . _ @ -)")
    user = by_name(session, name, required=False)
    if user is None:
        user = User(name=name, created_at=now)
        session.add(user)
    user.is_admin = user.is_admin or flags.admin
    user.is_process_owner = user.is_process_owner or flags.process_owner
    user.is_auditor = user.is_auditor or flags.auditor
    user.is_integration = user.is_integration or flags.integration
    for role_id in dict.fromkeys(roles):  # each once, in the order given
        role = ensure_role(session, role_id, now)
        if role not in user.roles:
            user.roles.append(role)
    session.flush()
    user.roles  # noqa: B018 - load them now: callers read them after the session closes
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_sha256=token_digest(token), created_at=now))
    session.flush()
    return user, token


PASSWORDS = PasswordHasher()  # argon2id, the library's recommended parameters
MIN_PASSWORD = 8


def hash_password(password: str) -> str:
    """An argon2 hash of a new password (tens of milliseconds of CPU: call it before
    opening a transaction, never inside one)."""
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"a password needs at least {MIN_PASSWORD} characters")
    return PASSWORDS.hash(password)


def set_password(
    session: Session, name: str, hashed: str, now: datetime, locale: str | None = None
) -> None:
    """Store a person's password hash (hash_password) for the web pages' sign-in, and
    the language their pages open in, if given. Their open sessions end."""
    user = by_name(session, name)
    assert user is not None
    user.password_hash = hashed
    if locale is not None:
        user.locale = locale
    end_sessions(session, user.id, now)


def by_name(session: Session, name: str, *, required: bool = True) -> User | None:
    user = session.scalars(select(User).where(User.name == name)).first()
    if user is None and required:
        raise UserNotFound(f"no user '{name}'", user=name)
    return user


@dataclass(frozen=True)
class Actor:
    """Who is acting, as the unit of work needs it: read in one query, never cached."""

    name: str
    roles: frozenset[str]
    is_admin: bool = False
    is_process_owner: bool = False
    is_auditor: bool = False
    is_integration: bool = False
    # elements this actor completed in the instance at hand, when read along with the task
    done: frozenset[str] | None = None

    @property
    def queues(self) -> frozenset[str]:
        """The queues the actor works: their roles, and the queue of tasks that name them
        (an assignee or a candidate user)."""
        return self.roles | {candidate(self.name)}


def candidate(name: str) -> str:
    """The queue of the one user ``name``: a task with that user as its assignee or as a
    candidate user is in it (camunda:assignee, camunda:candidateUsers)."""
    return CANDIDATE + name


_U, _UR = User.__table__.c, UserRole.__table__.c  # Core columns: no ORM on the hot path
_WHO = (_U.name, _U.is_admin, _U.is_process_owner, _U.is_auditor, _U.is_integration)
_IDENTITY = (
    select(*_WHO, _U.disabled_at, _UR.role_id)
    .select_from(User.__table__.outerjoin(UserRole.__table__, _UR.user_id == _U.id))
    .where(_U.name == bindparam("name"))
)


def identity(session: Session, name: str, *, enabled: bool = False) -> Actor:
    """Who ``name`` is; ``enabled``: a disabled account counts as no user (it can take
    no work: a task handed to it would sit where nobody can act on it)."""
    rows = session.connection().execute(_IDENTITY, {"name": name}).all()
    if not rows or (enabled and rows[0].disabled_at is not None):
        raise UserNotFound(f"no user '{name}'", user=name)
    first = rows[0]
    return Actor(
        name=first.name,
        roles=frozenset(r.role_id for r in rows if r.role_id is not None),
        is_admin=first.is_admin,
        is_process_owner=first.is_process_owner,
        is_auditor=first.is_auditor,
        is_integration=first.is_integration,
    )


_T, _S = ApiToken.__table__.c, WebSession.__table__.c


def _credential_query(credential: FromClause, *conditions: Any) -> Prepared:
    """Who a live credential (a token's or a session's row, joined on ``user_id``)
    belongs to: name, flags and roles in one row, for one statement per request."""
    return Prepared(
        select(
            *_WHO,
            select(func.aggregate_strings(_UR.role_id, ","))
            .where(_UR.user_id == _U.id)
            .correlate(User.__table__)
            .scalar_subquery()
            .label("roles"),
        )
        .select_from(User.__table__.join(credential, credential.c.user_id == _U.id))
        .where(*conditions, _U.disabled_at.is_(None))
    )


_BEARER_QUERY = _credential_query(
    ApiToken.__table__, _T.token_sha256 == bindparam("digest"), _T.revoked_at.is_(None)
)
_SESSION_QUERY = _credential_query(
    WebSession.__table__,
    _S.token_sha256 == bindparam("digest"),
    _S.ended_at.is_(None),
    _S.expires_at > bindparam("now"),
)


def _holder(row: tuple[Any, ...] | None) -> Actor | None:
    if row is None:
        return None
    name, admin, owner, auditor, integration, roles = row
    return Actor(
        name=name,
        roles=frozenset(roles.split(",")) if roles else frozenset(),
        is_admin=bool(admin),
        is_process_owner=bool(owner),
        is_auditor=bool(auditor),
        is_integration=bool(integration),
    )


def bearer(db: Database, token: str) -> Actor | None:
    """Who an unrevoked token belongs to, with roles and flags: one statement per request,
    straight through the driver, with no transaction of its own (one SELECT reads one
    snapshot)."""
    return _holder(db.first(_BEARER_QUERY, {"digest": token_digest(token)}))


def session_holder(db: Database, token: str, now: datetime) -> Actor | None:
    """Who a web session's token belongs to (engine/people/sign_in.py), read afresh on every
    request: None once the session ended or expired, or its account was disabled."""
    return _holder(db.first(_SESSION_QUERY, {"digest": token_digest(token), "now": now}))


def revoke(session: Session, name: str, now: datetime) -> int:
    """Take every credential of a user away at once: their live tokens are revoked, their
    open web sessions end and their password is cleared (``users passwd`` sets a new
    one); returns how many tokens were live."""
    user = by_name(session, name)
    assert user is not None
    user.password_hash = None
    end_sessions(session, user.id, now)
    live = list(
        session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        )
    )
    for token in live:
        token.revoked_at = now
    return len(live)


def disable(session: Session, name: str, now: datetime) -> None:
    """Nothing of the user's works until ``enable``: tokens, sessions (ended now) and
    password are refused. Their work and history stay."""
    user = by_name(session, name)
    assert user is not None
    if user.disabled_at is None:
        user.disabled_at = now
    end_sessions(session, user.id, now)


def enable(session: Session, name: str) -> None:
    """Undo ``disable``: the user's unrevoked tokens and their password work again."""
    user = by_name(session, name)
    assert user is not None
    user.disabled_at = None


def end_sessions(session: Session, user_id: int, now: datetime) -> None:
    """End every open web session of a user (engine/people/sign_in.py)."""
    session.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.ended_at.is_(None))
        .values(ended_at=now)
    )


def everyone(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def roles(session: Session) -> list[tuple[str, list[str]]]:
    """Every role with the names of the users who hold it."""
    result = []
    for role in session.scalars(select(Role).order_by(Role.id)):
        holders = session.scalars(
            select(User.name).join(User.roles).where(Role.id == role.id).order_by(User.name)
        )
        result.append((role.id, list(holders)))
    return result

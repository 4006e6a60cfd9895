"""The tables of people: users, roles, API tokens, web sessions and failed sign-ins."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.storage.models import Base


class Role(Base):
    __tablename__ = "role"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime]


class User(Base):
    __tablename__ = "app_user"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_process_owner: Mapped[bool] = mapped_column(Boolean, default=False)
    is_auditor: Mapped[bool] = mapped_column(Boolean, default=False)
    is_integration: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    password_hash: Mapped[str | None] = mapped_column(String(255))  # argon2; None: no sign-in
    locale: Mapped[str | None] = mapped_column(String(8))  # the pages' language: zh, en
    disabled_at: Mapped[datetime | None]  # set: no token, session or password works
    roles: Mapped[list[Role]] = relationship(secondary="user_role", lazy="selectin")

    @property
    def role_ids(self) -> set[str]:
        return {r.id for r in self.roles}


class UserRole(Base):
    __tablename__ = "user_role"
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), primary_key=True)
    role_id: Mapped[str] = mapped_column(ForeignKey("role.id"), primary_key=True)


class ApiToken(Base):
    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class WebSession(Base):
    """A signed-in browser. The cookie carries a random token; only its SHA-256 is kept,
    so ending the row (logout, revoke, disable) ends the session wherever it was copied."""

    __tablename__ = "web_session"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    address: Mapped[str | None] = mapped_column(String(64))  # where it signed in from


class SignInFailure(Base):
    """Failed sign-ins counted per key (``account:NAME`` or ``address:IP``) in a window."""

    __tablename__ = "sign_in_failure"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    first_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]

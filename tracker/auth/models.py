"""Dashboard users and their API tokens."""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from flask_login import UserMixin
from sqlalchemy import ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from tracker.db_types import UTCDateTime, utcnow
from tracker.extensions import db


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # viewer, operator or admin (tracker.auth.roles); supervisor lets an
    # operator approve quota overrides.
    role: Mapped[str] = mapped_column(
        String(16), default="viewer", server_default="viewer"
    )
    supervisor: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Set when an admin resets the password: the user must choose a new one.
    must_change_password: Mapped[bool] = mapped_column(
        default=False, server_default=false()
    )
    # The OpenID Connect subject ("sub") of a user who signs in by single
    # sign-on: who they are at the provider, whatever their user name here.
    oidc_subject: Mapped[str | None] = mapped_column(String(255), unique=True)

    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )
    sessions: Mapped[list[UserSession]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    @property
    def is_active(self) -> bool:
        return self.active

    def set_password(self, password: str) -> None:
        """Store a salted hash of the password, made by PASSWORD_HASH_METHOD."""
        method = current_app.config["PASSWORD_HASH_METHOD"]
        self.password_hash = generate_password_hash(password, method)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class UserSession(db.Model):
    """A signed-in browser session, known to the server by the SHA-256 digest
    of the id its cookie carries: signing out deletes the row, and a copy of
    the cookie signs nobody in."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(back_populates="sessions")


class ApiToken(db.Model):
    """A Bearer token; only its SHA-256 digest is stored. It expires, and it
    can be revoked; ``last_used`` is kept to the minute."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(80), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A read-only token acts as a viewer, whatever its user's role.
    read_only: Mapped[bool] = mapped_column(default=False, server_default=false())

    user: Mapped[User] = relationship(back_populates="tokens")

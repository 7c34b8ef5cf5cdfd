"""Accounts: checking passwords in constant work, password rules, and the
server-side record of signed-in sessions."""

from __future__ import annotations

import functools
import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from tracker.auth.models import User, UserSession
from tracker.db_types import utcnow

USERNAME_MAX_LENGTH = 80
PASSWORD_MAX_LENGTH = 500


@functools.cache
def _dummy_hash(method: str) -> str:
    return generate_password_hash(secrets.token_urlsafe(16), method)


def user_named(session: Session, username: str) -> User | None:
    """The user with this name, in any letter case (names differ by more than
    case); the exact name first, for users older than that rule."""
    user = session.scalar(select(User).where(User.username == username))
    if user is not None:
        return user
    alike = session.scalars(
        select(User).where(func.lower(User.username) == username.lower()).limit(2)
    ).all()
    return alike[0] if len(alike) == 1 else None


def authenticate(
    session: Session, username: str, password: str, method: str
) -> User | None:
    """Return the active user with this user name and password, or None.

    An unknown user name costs the same hashing as a known one (a hash made
    by ``method``, the one new passwords get), so the time taken does not
    tell which user names exist.
    """
    user = user_named(session, username)
    if user is None:
        check_password_hash(_dummy_hash(method), password)
        return None
    if not user.check_password(password) or not user.active:
        return None
    return user


def password_problem(password: str, min_length: int) -> str | None:
    """Say what is wrong with a new password, or None when it will do."""
    if len(password) < min_length:
        return f"must be at least {min_length} characters long"
    if len(password) > PASSWORD_MAX_LENGTH:
        return f"must be at most {PASSWORD_MAX_LENGTH} characters long"
    return None


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def start_session(session: Session, user: User) -> str:
    """Record a new signed-in session of ``user``; return the key its cookie
    carries (only its digest is stored)."""
    key = secrets.token_urlsafe(32)
    session.add(UserSession(user=user, key_hash=_digest(key)))
    return key


def session_user(
    session: Session, user_id: int, key: str | None, max_age: timedelta
) -> User | None:
    """The active user of a live session ``key`` of user ``user_id``, or None."""
    if not key:
        return None
    return session.scalar(
        select(User)
        .join(UserSession)
        .where(
            User.id == user_id,
            User.active.is_(True),
            UserSession.key_hash == _digest(key),
            UserSession.created > utcnow() - max_age,
        )
    )


def end_session(session: Session, key: str | None) -> None:
    """Forget the signed-in session ``key``: its cookie no longer signs in."""
    if key:
        session.execute(delete(UserSession).where(UserSession.key_hash == _digest(key)))


def end_sessions(session: Session, user: User, keep: str | None = None) -> int:
    """End every session of ``user`` but ``keep``; return how many ended."""
    statement = delete(UserSession).where(UserSession.user_id == user.id)
    if keep:
        statement = statement.where(UserSession.key_hash != _digest(keep))
    return session.execute(statement).rowcount


def prune_sessions(session: Session, max_age: timedelta) -> int:
    """Delete the sessions older than ``max_age``; return how many."""
    return session.execute(
        delete(UserSession).where(UserSession.created <= utcnow() - max_age)
    ).rowcount

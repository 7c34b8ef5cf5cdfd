"""API tokens: issued once in clear, stored as a SHA-256 digest, revocable."""

from __future__ import annotations

import hashlib
import secrets

from flask import request
from sqlalchemy import select

from tracker.auth.models import ApiToken, User
from tracker.db_types import utcnow
from tracker.extensions import db

TOKEN_PREFIX = "trk_"  # noqa: S105 - marks tokens in logs and scanners


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(session, user: User, name: str = "") -> str:
    """Add a new token for ``user`` to ``session`` and return it in clear."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user=user, name=name, token_hash=digest(token)))
    return token


def revoke_token(token_row: ApiToken) -> None:
    token_row.revoked = utcnow()


def user_for_token(token: str) -> User | None:
    """Return the active user owning an unrevoked ``token``."""
    return db.session.scalar(
        select(User)
        .join(ApiToken)
        .where(
            ApiToken.token_hash == digest(token),
            ApiToken.revoked.is_(None),
            User.active.is_(True),
        )
    )


def bearer_token() -> str | None:
    auth = request.authorization
    if auth is None or auth.type != "bearer" or not auth.token:
        return None
    return auth.token


def load_user_from_request(_request) -> User | None:
    """Flask-Login's request loader: a Bearer token signs the request in.

    On a dashboard page it counts only without a session, and never leaves one.
    """
    token = bearer_token()
    return user_for_token(token) if token else None

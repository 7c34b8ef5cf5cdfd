"""API tokens: issued once in clear, stored as a SHA-256 digest, expiring and
revocable; their last use is kept to the minute."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import g, request
from sqlalchemy import select, update

from tracker.auth.models import ApiToken, User
from tracker.db_types import utcnow
from tracker.extensions import db

TOKEN_PREFIX = "trk_"  # noqa: S105 - marks tokens in logs and scanners
DEFAULT_EXPIRY_DAYS = 365
# A token's last use is written at most this often: not one write per request.
LAST_USED_PRECISION = timedelta(minutes=1)
ACTIVE, EXPIRED, REVOKED = "active", "expired", "revoked"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(
    session,
    user: User,
    name: str = "",
    expires_in_days: int = DEFAULT_EXPIRY_DAYS,
    read_only: bool = False,
) -> str:
    """Add a new token for ``user`` to ``session``, valid for ``expires_in_days``
    (acting as a viewer if ``read_only``), and return it in clear."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            user=user,
            name=name,
            token_hash=digest(token),
            expires=utcnow() + timedelta(days=expires_in_days),
            read_only=read_only,
        )
    )
    return token


def revoke_token(token_row: ApiToken) -> None:
    if token_row.revoked is None:
        token_row.revoked = utcnow()


def token_status(token_row: ApiToken, now: datetime | None = None) -> str:
    """ACTIVE, EXPIRED or REVOKED."""
    if token_row.revoked is not None:
        return REVOKED
    return EXPIRED if token_row.expires <= (now or utcnow()) else ACTIVE


def user_for_token(token: str) -> User | None:
    """Return the active user owning ``token`` if it is neither expired nor
    revoked, and note its use."""
    now = utcnow()
    row = db.session.execute(
        select(User, ApiToken)
        .join(ApiToken)
        .where(
            ApiToken.token_hash == digest(token),
            ApiToken.revoked.is_(None),
            ApiToken.expires > now,
            User.active.is_(True),
        )
    ).one_or_none()
    if row is None:
        return None
    user, token_row = row
    g.token_sign_in = True
    g.read_only_token = token_row.read_only
    if token_row.last_used is None or token_row.last_used < now - LAST_USED_PRECISION:
        # Committed here, at the edge: a read-only request commits nothing else,
        # and nothing of the request is pending yet.
        db.session.execute(
            update(ApiToken).where(ApiToken.id == token_row.id).values(last_used=now)
        )
        db.session.commit()
    return user


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

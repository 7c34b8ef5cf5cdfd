"""Idempotent registration: a POST retried with the same ``Idempotency-Key``
header answers the instance that the first one created, instead of a second one.

A client that lost the answer to its registration (a timeout, a 500 while a
worker was killed) cannot know whether it was stored; with a key it may simply
send it again. Keys are kept for a day, as digests; the same key with another
registration is refused. Plain functions; the caller commits.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from tracker.api import ApiError, invalid
from tracker.db_types import utcnow
from tracker.instances.models import Instance, RegistrationKey

HEADER = "Idempotency-Key"
KEY_MAX = 255
KEPT = timedelta(days=1)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def key_digest(raw: str | None) -> str | None:
    """The digest of a request's key, None without one; a bad key is a 400."""
    if raw is None:
        return None
    if not 1 <= len(raw) <= KEY_MAX or not raw.isascii() or not raw.isprintable():
        raise invalid(HEADER, f"must be 1 to {KEY_MAX} printable ASCII characters")
    return _digest(raw)


def fingerprint(values: dict[str, Any]) -> str:
    """What identifies a registration's content, whichever way it was spelled."""
    return _digest(json.dumps(values, sort_keys=True))


def earlier_registration(
    session: Session, digest: str, values_fingerprint: str
) -> Instance | None:
    """The instance registered with this key within a day, if any."""
    row = session.get(RegistrationKey, digest)
    if row is None:
        return None
    if row.created < utcnow() - KEPT:
        session.delete(row)  # expired: the key may start afresh
        return None
    if row.fingerprint != values_fingerprint:
        raise ApiError(
            422,
            "Idempotency key reused",
            f"{HEADER} was already used for another registration",
            field=HEADER,
        )
    return session.get(Instance, row.instance_id)


def remember(
    session: Session, digest: str, values_fingerprint: str, instance_id: int
) -> None:
    """Keep the key of a new registration. Another request storing the same
    key meanwhile makes the commit fail: the caller answers that one's instance."""
    session.add(
        RegistrationKey(
            key=digest,
            fingerprint=values_fingerprint,
            instance_id=instance_id,
            created=utcnow(),
        )
    )


def prune_keys(session: Session) -> int:
    """Forget keys older than a day; return how many."""
    result = session.execute(
        delete(RegistrationKey).where(RegistrationKey.created < utcnow() - KEPT)
    )
    return result.rowcount

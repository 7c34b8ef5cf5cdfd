"""Turning a record into the canonical JSON a transaction carries, and its hash."""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any


def json_value(value: Any) -> Any:
    """Return a column value as plain JSON: ISO 8601 times, decimals as strings."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, enum.Enum):
        return json_value(value.value)
    raise TypeError(f"cannot serialise a {type(value).__name__} for sync")


# Built once: json.dumps with options builds a new encoder on every call,
# which costs about as much as encoding a small payload.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(data: Any) -> str:
    """Serialise with sorted keys and no spaces, so equal content gives equal text."""
    return _CANONICAL.encode(data)


def transaction_hash(
    producer_id: str,
    sequence: int,
    model: str,
    natural_key: list[Any],
    action: str,
    payload: dict[str, Any],
) -> str:
    """Return the SHA-256 of a transaction's canonical content (plaintext payload)."""
    content = canonical_json(
        {
            "producer": producer_id,
            "sequence": sequence,
            "model": model,
            "natural_key": natural_key,
            "action": action,
            "payload": payload,
        }
    )
    return hashlib.sha256(content.encode()).hexdigest()

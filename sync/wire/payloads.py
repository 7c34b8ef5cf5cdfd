"""Turning a record into the canonical JSON a transaction carries, its hash, and
opening a received payload again."""

from __future__ import annotations

import base64
import enum
import functools
import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sync.wire.crypto import InvalidPayload, decrypt_payload


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


@functools.lru_cache(maxsize=4096)
def _text(value: str) -> str:
    """A short, often repeated text (an action, a model, a producer) as JSON."""
    return canonical_json(value)


def _hash_over_text(transaction: Mapping[str, Any], text: str) -> str:
    """The transaction's hash if ``text`` is its payload's canonical JSON, made
    without parsing and writing the payload again: the content's keys in
    canonical (sorted) order, the payload's text in its place."""
    content = (
        '{"action":'
        + _text(transaction["action"])
        + ',"model":'
        + _text(transaction["model"])
        + ',"natural_key":'
        + canonical_json(transaction["natural_key"])
        + ',"payload":'
        + text
        + ',"producer":'
        + _text(transaction["producer"])
        + ',"sequence":'
        + canonical_json(transaction["sequence"])
        + "}"
    )
    return hashlib.sha256(content.encode()).hexdigest()


def open_transaction(
    transaction: Mapping[str, Any], key: str | bytes | None
) -> tuple[Any, str]:
    """Decrypt a wire transaction's payload if it is sealed, parse it and check
    it against the transaction's hash; return it and its plaintext, or raise
    InvalidPayload. A sealed payload needs ``key``: callers say when it is
    missing.

    The hash is first computed over the payload's text as sent, which devices
    write canonically: when that matches, the text is the one the hash was made
    of and the payload need not be written again to compare."""
    text = transaction["payload"]
    if transaction["encrypted"]:
        context = f"{transaction['producer']}:{transaction['sequence']}"
        text = decrypt_payload(text, key, context)
    try:
        payload = json.loads(text)
    except ValueError:
        raise InvalidPayload("the payload is not JSON") from None
    except RecursionError:
        raise InvalidPayload("the payload nests too deep") from None
    if _hash_over_text(transaction, text) == transaction["hash"]:
        return payload, text
    expected = transaction_hash(
        transaction["producer"],
        transaction["sequence"],
        transaction["model"],
        transaction["natural_key"],
        transaction["action"],
        payload,
    )
    if expected != transaction["hash"]:
        raise InvalidPayload("the payload does not match the transaction's hash")
    return payload, text

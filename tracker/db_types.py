"""Column types shared by every domain."""

import json
import re
from datetime import UTC, datetime

import orjson
from sqlalchemy import DateTime, Text
from sqlalchemy.types import TypeDecorator

from tracker.crypto import current_keyring, decrypt, encrypt


def dumps_json(value) -> str:
    """JSON columns' text, by orjson; by the standard library for what orjson
    does not write (integers past 64 bits, keys that are not text)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


def loads_json(text):
    """JSON columns' values, by orjson; by the standard library for what orjson
    does not read as it would (integers past 64 bits, lone surrogates)."""
    if isinstance(text, str) and LONG_DIGITS.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


LONG_DIGITS = re.compile(r"\d{20}")


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """An aware UTC datetime on every database (SQLite keeps no time zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class EncryptedText(TypeDecorator):
    """A text kept encrypted at rest with a key derived from SECRET_KEY (see
    :mod:`tracker.crypto`): the current app's key, or the one given to
    ``tracker.crypto.use_keyring`` for use without an app."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return encrypt(current_keyring(), value)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return decrypt(current_keyring(), value)


# The leading numbers of a version-like text: "3.12.1rc1" -> 3, 12, 1.
VERSION_PATTERN = r"^[0-9]{1,9}(?:\.[0-9]{1,9}){0,15}"
VERSION_PREFIX = re.compile(VERSION_PATTERN)
VERSION_KEY_FUNCTION = "tracker_version_key"


def version_key(text: object) -> str | None:
    """A text that sorts version-like strings as versions ("3.9" before
    "3.12"): each number zero-padded; None for text that starts otherwise.
    SQLite calls it as ``tracker_version_key``; PostgreSQL sorts integer arrays."""
    if not isinstance(text, str):
        return None
    match = VERSION_PREFIX.match(text)
    if match is None:
        return None
    return ".".join(f"{int(part):09d}" for part in match.group(0).split("."))

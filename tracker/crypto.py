"""Secrets at rest: values a column must keep readable (a quota client's
secret, a device's sync key) stored with authenticated encryption.

The key is derived from SECRET_KEY with HKDF-SHA256; SECRET_KEY_FALLBACKS
(older keys, newest first) still decrypt, so the key can be rotated:
:func:`rotate_encrypted_columns` re-encrypts every value under SECRET_KEY.
Values are Fernet tokens (AES-128-CBC with HMAC-SHA256) behind a version
prefix.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "enc1:"
HKDF_INFO = b"instance-tracker: secrets at rest, v1"


class UndecryptableValue(Exception):
    """A stored secret that no configured key opens (one line)."""


def derived_key(secret_key: str | bytes) -> Fernet:
    """The column key derived from one SECRET_KEY."""
    material = secret_key.encode("utf-8") if isinstance(secret_key, str) else secret_key
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(
        material
    )
    return Fernet(base64.urlsafe_b64encode(raw))


@functools.lru_cache(maxsize=16)
def _keyring(keys: tuple[str | bytes, ...]) -> MultiFernet:
    return MultiFernet([derived_key(key) for key in keys])


def keyring(config: Mapping[str, Any]) -> MultiFernet:
    """SECRET_KEY's column key first (it encrypts), then the fallbacks'."""
    fallbacks = config.get("SECRET_KEY_FALLBACKS") or ()
    return _keyring((config["SECRET_KEY"], *fallbacks))


_outside_flask: list[MultiFernet] = []


def use_keyring(keys: MultiFernet) -> None:
    """The keys for encrypted columns used with no application context (code
    on a plain SQLAlchemy session); inside one, the app's settings decide."""
    _outside_flask[:] = [keys]


def current_keyring() -> MultiFernet:
    """The current application's keys, or those given to :func:`use_keyring`."""
    from flask import current_app, has_app_context

    if has_app_context():
        return keyring(current_app.config)
    if not _outside_flask:
        raise UndecryptableValue(
            "an encrypted column needs an application context or use_keyring()"
        )
    return _outside_flask[0]


def encrypt(keys: MultiFernet, plaintext: str) -> str:
    return PREFIX + keys.encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(keys: MultiFernet, stored: str) -> str:
    """The plaintext of ``stored``; UndecryptableValue when no key opens it."""
    if not stored.startswith(PREFIX):
        raise UndecryptableValue("a stored secret is not encrypted")
    try:
        return keys.decrypt(stored[len(PREFIX) :].encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise UndecryptableValue(
            "a stored secret cannot be decrypted: SECRET_KEY changed? "
            "put the old key in SECRET_KEY_FALLBACKS"
        ) from None


def reencrypt(keys: MultiFernet, stored: str) -> str:
    """``stored`` encrypted again under the first key."""
    return encrypt(keys, decrypt(keys, stored))


def encrypted_columns(metadata) -> Iterable[tuple[Any, Any]]:
    """(table, column) of every encrypted column of ``metadata``."""
    from tracker.db_types import EncryptedText

    for table in metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, EncryptedText):
                yield table, column


def rotate_encrypted_columns(connection, metadata, keys: MultiFernet) -> int:
    """Re-encrypt every stored secret under the first key; return how many.

    Reads and writes the stored text itself, not through the column type.
    """
    from sqlalchemy import Text, column, select, table, update

    count = 0
    for model_table, encrypted in encrypted_columns(metadata):
        (primary,) = model_table.primary_key.columns
        raw = table(
            model_table.name, column(primary.name), column(encrypted.name, Text)
        )
        rows = connection.execute(
            select(raw.c[primary.name], raw.c[encrypted.name]).where(
                raw.c[encrypted.name].is_not(None)
            )
        ).all()
        for key, stored in rows:
            connection.execute(
                update(raw)
                .where(raw.c[primary.name] == key)
                .values({encrypted.name: reencrypt(keys, stored)})
            )
            count += 1
    return count

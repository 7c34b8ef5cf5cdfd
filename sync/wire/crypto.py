"""Authenticated encryption of payloads with a per-device key (AES-256-GCM)."""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "aesgcm1:"
NONCE_BYTES = 12


class InvalidPayload(ValueError):
    """The payload is malformed, tampered with, or sealed with another key."""


def new_device_key() -> str:
    """Return a fresh 256-bit device key as URL-safe base64 text."""
    return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()


def _key_bytes(key: str | bytes) -> bytes:
    raw = key if isinstance(key, bytes) else base64.urlsafe_b64decode(key.encode())
    if len(raw) != 32:
        raise ValueError("a device key is 32 bytes")
    return raw


def encrypt_payload(plaintext: str, key: str | bytes, context: str = "") -> str:
    """Seal the payload; ``context`` (e.g. producer and sequence) is authenticated."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(_key_bytes(key)).encrypt(
        nonce, plaintext.encode(), context.encode()
    )
    return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()


def decrypt_payload(ciphertext: str, key: str | bytes, context: str = "") -> str:
    """Open a sealed payload; raise InvalidPayload unless it is intact and ours."""
    if not ciphertext.startswith(PREFIX):
        raise InvalidPayload("the payload is not an encrypted sync payload")
    try:
        raw = base64.urlsafe_b64decode(ciphertext[len(PREFIX) :].encode())
    except ValueError:
        raise InvalidPayload("the encrypted payload is not readable") from None
    if len(raw) <= NONCE_BYTES:
        raise InvalidPayload("the encrypted payload is truncated")
    try:
        plaintext = AESGCM(_key_bytes(key)).decrypt(
            raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()
        )
    except InvalidTag:
        raise InvalidPayload(
            "the encrypted payload was tampered with or sealed with another key"
        ) from None
    return plaintext.decode()

"""Producer credentials: an Ed25519 key pair per field device.

The device keeps the private key and signs every bundle it sends; the server
keeps only the public key, so a copy of the server's database cannot forge a
device's data, and a middleman can carry bundles without being able to alter
them.
"""

from __future__ import annotations

import base64

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

KEY_BYTES = 32


class InvalidKey(ValueError):
    """A credential or public key is not 32 bytes of URL-safe base64."""


def _decode(text: str, what: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise InvalidKey(f"the {what} is not URL-safe base64") from None
    if len(raw) != KEY_BYTES:
        raise InvalidKey(f"the {what} is not a 32-byte Ed25519 key")
    return raw


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


def new_credential() -> str:
    """Return a fresh private signing key (the device's credential) as text."""
    return _encode(Ed25519PrivateKey.generate().private_bytes_raw())


def public_key_of(credential: str) -> str:
    """Return the public key that verifies what ``credential`` signs."""
    private = Ed25519PrivateKey.from_private_bytes(_decode(credential, "credential"))
    return _encode(private.public_key().public_bytes_raw())


def check_public_key(public_key: str) -> str:
    """Return ``public_key`` if it is a well-formed key, else raise InvalidKey."""
    _decode(public_key, "public key")
    return public_key


def sign(credential: str, message: bytes) -> str:
    private = Ed25519PrivateKey.from_private_bytes(_decode(credential, "credential"))
    return _encode(private.sign(message))


def verify(public_key: str, message: bytes, signature: str) -> bool:
    """True when ``signature`` is the key holder's signature of ``message``."""
    key = Ed25519PublicKey.from_public_bytes(_decode(public_key, "public key"))
    try:
        raw = base64.urlsafe_b64decode(signature.encode("ascii"))
        key.verify(raw, message)
    except (InvalidSignature, ValueError, UnicodeEncodeError):
        return False
    return True


POSITION_PURPOSE = "sync-position"


def position_message(producer_id: str) -> bytes:
    """What a device signs to learn how far the server holds its sequences."""
    return f"{POSITION_PURPOSE}:{producer_id}".encode()


def position_request(producer_id: str, credential: str) -> dict[str, str]:
    """The body of a signed position request."""
    return {
        "producer": producer_id,
        "signature": sign(credential, position_message(producer_id)),
    }

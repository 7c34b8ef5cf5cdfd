"""Override codes that work offline: signed, bound, expiring, single-use.

A field client over its ceiling shows a *request code*; the supervisor types it
into the controller, which answers with an *approval code* the client checks on
its own, with no network: an HMAC over the payload, keyed per client.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime


class InvalidCode(ValueError):
    """The code is malformed, tampered with, expired or meant for someone else."""


def _encode(data: dict) -> str:
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(text: str) -> dict:
    try:
        padded = text.strip() + "=" * (-len(text.strip()) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError, RecursionError):
        raise InvalidCode("the code is not readable") from None
    if not isinstance(data, dict):
        raise InvalidCode("the code is not readable")
    return data


def override_key(client_secret: str) -> bytes:
    """The signing key of a client's codes, derived from its shared secret."""
    return hashlib.sha256(b"quota-override:" + client_secret.encode()).digest()


@dataclass(frozen=True)
class OverrideRequest:
    client: str
    record_kind: str
    count: int
    nonce: str

    @classmethod
    def new(cls, client: str, record_kind: str, count: int) -> OverrideRequest:
        return cls(client, record_kind, count, secrets.token_hex(8))

    def code(self) -> str:
        return _encode(asdict(self))

    @classmethod
    def parse(cls, code: str) -> OverrideRequest:
        data = _decode(code)
        try:
            return cls(
                str(data["client"]),
                str(data["record_kind"]),
                int(data["count"]),
                str(data["nonce"]),
            )
        except (KeyError, TypeError, ValueError, OverflowError):
            raise InvalidCode("the request code is incomplete") from None


@dataclass(frozen=True)
class Approval:
    client: str
    record_kind: str
    extra: int
    nonce: str
    expires: int  # Unix time


def approval_code(approval: Approval, key: bytes) -> str:
    payload = _encode(asdict(approval))
    signature = hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{payload}.{signature}"


def verify_approval(
    code: str, key: bytes, client: str, record_kind: str, now: datetime | None = None
) -> Approval:
    """Return the approval if the code is genuine, unexpired and for this client
    and record kind; raise InvalidCode otherwise. Single use is the caller's job."""
    payload, _, signature = code.strip().partition(".")
    expected = hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()[:32]
    if not signature or not hmac.compare_digest(signature, expected):
        raise InvalidCode("the approval code is not genuine")
    data = _decode(payload)
    try:
        approval = Approval(
            str(data["client"]),
            str(data["record_kind"]),
            int(data["extra"]),
            str(data["nonce"]),
            int(data["expires"]),
        )
    except (KeyError, TypeError, ValueError, OverflowError):
        raise InvalidCode("the approval code is incomplete") from None
    if approval.client != client or approval.record_kind != record_kind:
        raise InvalidCode("the approval code is for another client or record kind")
    if (now or datetime.now(UTC)).timestamp() >= approval.expires:
        raise InvalidCode("the approval code has expired")
    if approval.extra < 1:
        raise InvalidCode("the approval code grants nothing")
    return approval

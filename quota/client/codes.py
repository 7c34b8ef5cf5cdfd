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

from quota.client import clock as device_clock


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
    expires: int  # Unix time, on the controller's clock
    issued: int = 0  # Unix time, on the controller's clock
    max_skew: int = 0  # seconds a device clock may be off from the controller's
    # The quota's window, for a device that never heard from the controller.
    window_start: int = 0
    window_expires: int = 0


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
            int(data.get("issued", 0)),
            int(data.get("max_skew", 0)),
            int(data.get("window_start", 0)),
            int(data.get("window_expires", 0)),
        )
    except (KeyError, TypeError, ValueError, OverflowError):
        raise InvalidCode("the approval code is incomplete") from None
    if approval.client != client or approval.record_kind != record_kind:
        raise InvalidCode("the approval code is for another client or record kind")
    clock = now.timestamp() if now else device_clock.now_timestamp()
    # The controller holds the records for the code until its expiry plus the
    # skew it allows, so a device clock up to max_skew slow stays inside the
    # target; a clock slower than that is refused outright.
    if approval.issued and clock < approval.issued - approval.max_skew:
        raise InvalidCode(
            f"this device's clock says {shown_time(clock)} but the code was approved at"
            f" {shown_time(approval.issued)}: check the device clock"
        )
    if clock >= approval.expires:
        raise InvalidCode(
            f"the approval code has expired (at {shown_time(approval.expires)}; this"
            f" device's clock says {shown_time(clock)}): if it was approved recently,"
            " check the device clock"
        )
    if approval.extra < 1:
        raise InvalidCode("the approval code grants nothing")
    return approval


def shown_time(timestamp: float) -> str:
    """A Unix time as messages to the field user show it."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")

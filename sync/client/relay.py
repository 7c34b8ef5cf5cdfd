"""A middleman: a node that takes bundles from field clients (pushed or carried
as files), keeps them durably, and forwards them unchanged to the server.

Bundles stay as their producers signed them, so the producers' sequence numbers
and signatures reach the server intact; the middleman can neither alter nor
forge them. It acknowledges a client only once the bundle is committed, and
marks a bundle forwarded only once the server acknowledged it::

    RelayedBundle = relay_models(db.Model)
    app.register_blueprint(make_relay_blueprint(db, RelayedBundle))
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy import BigInteger, Boolean, Integer, String, Text, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from sync.client.models import UTCDateTime, utc_now
from sync.client.transfer import HttpTransport, Retry, Transport, send_bundle
from sync.wire.bounded import JsonRefused
from sync.wire.bundles import (
    Bundle,
    BundleError,
    bundle_from_json,
    load_pushed_bundle,
    read_bundle_path,
)
from sync.wire.payloads import canonical_json

MAX_BODY_BYTES = 32 * 1024 * 1024


def relay_models(base: type) -> type:
    """Declare ``sync_relayed_bundles`` on the middleman's declarative base."""

    class RelayedBundle(base):
        __tablename__ = "sync_relayed_bundles"

        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        producer_id: Mapped[str] = mapped_column(String(100), index=True)
        first_sequence: Mapped[int] = mapped_column(BigInteger)
        last_sequence: Mapped[int] = mapped_column(BigInteger)
        count: Mapped[int] = mapped_column(Integer)
        # The checksum of the transactions (which carry producer and sequence)
        # names a bundle's content, however often it is sent.
        digest: Mapped[str] = mapped_column(String(64), unique=True)
        body: Mapped[str] = mapped_column(Text)
        received: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
        forwarded: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
        forwarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    return RelayedBundle


def keep_bundle(session: Session, relayed_model: type, bundle: Bundle) -> bool:
    """Store a bundle for forwarding; False if the same transactions are kept.
    The caller commits."""
    exists = session.scalar(
        select(relayed_model.id).where(relayed_model.digest == bundle.digest)
    )
    if exists is not None:
        return False
    try:
        with session.begin_nested():
            session.add(
                relayed_model(
                    producer_id=bundle.producer,
                    first_sequence=bundle.first_sequence,
                    last_sequence=bundle.last_sequence,
                    count=len(bundle.transactions),
                    digest=bundle.digest,
                    body=canonical_json(bundle.as_json()),
                    received=utc_now(),
                    forwarded=False,
                )
            )
    except IntegrityError:
        return False  # kept by a concurrent request
    return True


def make_relay_blueprint(
    db: Any,
    relayed_model: type,
    max_batch: int = 10_000,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> Blueprint:
    """The middleman's push endpoint, the same as the server's."""
    bp = Blueprint("sync_relay", __name__)

    @bp.post("/api/sync/push")
    def push():
        if (request.content_length or 0) > max_body_bytes:
            return _refusal(413, "body", f"at most {max_body_bytes} bytes")
        try:
            # One byte past the cap tells a chunked body (no length) too large.
            raw = request.stream.read(max_body_bytes + 1)
        except Exception:  # a malformed chunked body
            return _refusal(400, "body", "the request body could not be read")
        if len(raw) > max_body_bytes:
            return _refusal(413, "body", f"at most {max_body_bytes} bytes")
        try:
            data = load_pushed_bundle(raw, max_batch)
        except JsonRefused as exc:
            return _refusal(413 if exc.too_large else 400, exc.field, str(exc))
        try:
            bundle = bundle_from_json(data)
        except ValueError as exc:
            field = exc.field if isinstance(exc, BundleError) else "body"
            return _refusal(400, field, str(exc))
        kept = keep_bundle(db.session, relayed_model, bundle)
        db.session.commit()
        return jsonify(
            {
                "producer": bundle.producer,
                "first_sequence": bundle.first_sequence,
                "acknowledged_through": bundle.last_sequence,
                "relayed": True,
                "duplicates": 0 if kept else len(bundle.transactions),
            }
        )

    return bp


def _refusal(status: int, field: str, message: str):
    response = jsonify({"error": "Invalid value", "message": message, "field": field})
    response.status_code = status
    return response


def import_relay_file(
    session: Session, relayed_model: type, path: str | Path, max_bytes: int = 2**30
) -> tuple[Bundle, bool]:
    """Keep a carried bundle file for forwarding; the caller commits."""
    bundle = read_bundle_path(path, max_bytes)
    return bundle, keep_bundle(session, relayed_model, bundle)


@dataclass
class ForwardSummary:
    bundles: int = 0
    transactions: int = 0


def forward(
    session: Session,
    relayed_model: type,
    url: str,
    transport: Transport | None = None,
    retry: Retry | None = None,
    commit: Callable[[], None] | None = None,
) -> ForwardSummary:
    """Send every kept bundle to the server in the order received; mark each
    forwarded once acknowledged, and commit after each."""
    transport = transport or HttpTransport()
    retry = retry or Retry()
    commit = commit or session.commit
    summary = ForwardSummary()
    after = 0
    while True:
        row = session.scalar(
            select(relayed_model)
            .where(relayed_model.forwarded.is_(False), relayed_model.id > after)
            .order_by(relayed_model.id)
            .limit(1)
        )
        if row is None:
            return summary
        after = row.id
        data = json.loads(row.body)
        session.rollback()
        bundle = Bundle(data["manifest"], data["signature"], data["transactions"])
        send_bundle(transport, url, bundle, retry)
        session.execute(
            update(relayed_model)
            .where(relayed_model.id == after)
            .values(forwarded=True, forwarded_at=utc_now())
        )
        commit()
        summary.bundles += 1
        summary.transactions += len(bundle.transactions)

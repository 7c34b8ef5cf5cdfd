"""A middleman: a node that takes bundles from field clients (pushed or carried
as files), keeps them durably, and forwards them unchanged to the server.

Bundles stay as their producers signed them, so the producers' sequence numbers
and signatures reach the server intact; the middleman can neither alter nor
forge them. It takes only bundles signed by a producer on the list the server
publishes to it (``flask relay keys URL``, GET /api/sync/producer-keys), so a
stranger cannot fill it. It acknowledges a client only once the bundle is
committed, and marks a bundle forwarded only once the server acknowledged it; a
bundle the server refuses is set aside with the reason and never blocks the
rest (``flask relay status``, ``drop``, ``retry``). ``flask relay export DIR``
writes the kept bundles as files, for a site server whose bundles reach the
central server on a disk::

    RelayedBundle = relay_models(db.Model)
    app.register_blueprint(make_relay_blueprint(db, RelayedBundle))
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    String,
    Text,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from sync.client.models import UTCDateTime, utc_now
from sync.client.transfer import (
    HttpTransport,
    ReplyTotals,
    Retry,
    TransferError,
    Transport,
    Unreachable,
    send_bundle,
    write_bundle_to,
)
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


class RelayRefused(Exception):
    """A bundle from a producer the middleman does not know, or not signed by it."""


def relay_models(base: type) -> type:
    """Declare ``sync_relayed_bundles`` and ``sync_relay_producers`` (the
    producers' public keys, as the server published them) on the middleman's
    declarative base; return the bundle model, with the key model as its
    ``producer_keys`` attribute."""

    class RelayProducerKey(base):
        __tablename__ = "sync_relay_producers"

        producer_id: Mapped[str] = mapped_column(String(100), primary_key=True)
        public_key: Mapped[str] = mapped_column(String(64))
        fetched: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)

    class RelayedBundle(base):
        __tablename__ = "sync_relayed_bundles"
        # A bundle's number is never given again after a drop (SQLite reuses
        # the highest rowid without AUTOINCREMENT; PostgreSQL's sequence never
        # does), so a number read from an old status names no other bundle.
        __table_args__ = {"sqlite_autoincrement": True}

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
        # Why the server refused it: set aside, not forwarded again until retried.
        refused: Mapped[str | None] = mapped_column(Text)
        # Written to a file by ``flask relay export`` (and so not forwarded).
        exported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    RelayedBundle.producer_keys = RelayProducerKey
    return RelayedBundle


def check_relayed(session: Session, relayed_model: type, bundle: Bundle) -> None:
    """Raise RelayRefused unless a producer on the published list signed it."""
    keys = relayed_model.producer_keys
    public_key = session.scalar(
        select(keys.public_key).where(keys.producer_id == bundle.producer)
    )
    if public_key is None:
        raise RelayRefused(
            f"producer {bundle.producer!r} is not on this middleman's list"
            " (flask relay keys fetches it from the server)"
        )
    try:
        bundle.verify_signature(public_key)
    except BundleError as exc:
        raise RelayRefused(str(exc)) from None


def store_producer_keys(
    session: Session, relayed_model: type, items: list[dict[str, Any]]
) -> int:
    """Replace the middleman's producer list with ``items`` ({producer_id,
    public_key}); the caller commits."""
    keys = relayed_model.producer_keys
    session.execute(keys.__table__.delete())
    now = utc_now()
    for item in items:
        session.add(
            keys(
                producer_id=item["producer_id"],
                public_key=item["public_key"],
                fetched=now,
            )
        )
    return len(items)


def fetch_producer_keys(url: str, token: str, timeout: float = 60.0) -> list[dict]:
    """The producer list the server at ``url`` publishes, read with a Bearer token."""
    try:
        response = HttpTransport(timeout).session.get(
            url.rstrip("/") + "/api/sync/producer-keys",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            allow_redirects=False,
        )
        reply = response.json()
    except (OSError, ValueError) as exc:
        raise TransferError(f"{url}: {exc.__class__.__name__}: {exc}") from None
    if response.status_code != 200 or not isinstance(reply.get("items"), list):
        message = reply.get("message") if isinstance(reply, dict) else None
        raise TransferError(
            f"the server did not give the producer list:"
            f" {message or f'HTTP {response.status_code}'}"
        )
    return [
        {"producer_id": str(item["producer_id"]), "public_key": str(item["public_key"])}
        for item in reply["items"]
    ]


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
        try:
            check_relayed(db.session, relayed_model, bundle)
        except RelayRefused as exc:
            db.session.rollback()
            return _refusal(403, "signature", str(exc), "Forbidden")
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


def _refusal(status: int, field: str, message: str, error: str = "Invalid value"):
    response = jsonify({"error": error, "message": message, "field": field})
    response.status_code = status
    return response


def import_relay_file(
    session: Session, relayed_model: type, path: str | Path, max_bytes: int = 2**30
) -> tuple[Bundle, bool]:
    """Keep a carried bundle file for forwarding; the caller commits. Raises
    RelayRefused for a producer not on the list or a bad signature."""
    bundle = read_bundle_path(path, max_bytes)
    check_relayed(session, relayed_model, bundle)
    return bundle, keep_bundle(session, relayed_model, bundle)


@dataclass
class ForwardSummary:
    bundles: int = 0
    transactions: int = 0
    refused: list[str] = field(default_factory=list)
    # What the server took but held (a model off its SYNC_MODELS), and why.
    totals: ReplyTotals = field(default_factory=ReplyTotals)


def _waiting(relayed_model: type) -> list:
    return [
        relayed_model.forwarded.is_(False),
        relayed_model.refused.is_(None),
    ]


def _next_waiting(session: Session, relayed_model: type, after: int) -> Any:
    return session.scalar(
        select(relayed_model)
        .where(*_waiting(relayed_model), relayed_model.id > after)
        .order_by(relayed_model.id)
        .limit(1)
    )


def _stored_bundle(row: Any) -> Bundle:
    data = json.loads(row.body)
    return Bundle(data["manifest"], data["signature"], data["transactions"])


def forward(
    session: Session,
    relayed_model: type,
    url: str,
    transport: Transport | None = None,
    retry: Retry | None = None,
    commit: Callable[[], None] | None = None,
) -> ForwardSummary:
    """Send every kept bundle to the server in the order received; mark each
    forwarded once acknowledged, or refused (with the server's reason, set aside
    so it blocks nothing) when the server refuses it; commit after each."""
    transport = transport or HttpTransport()
    retry = retry or Retry()
    commit = commit or session.commit
    summary = ForwardSummary()
    after = 0
    while True:
        row = _next_waiting(session, relayed_model, after)
        if row is None:
            return summary
        after = row.id
        bundle = _stored_bundle(row)
        session.rollback()
        try:
            reply = send_bundle(transport, url, bundle, retry)
        except Unreachable:
            raise
        except TransferError as exc:
            reason = str(exc)
            session.execute(
                update(relayed_model)
                .where(relayed_model.id == after)
                .values(refused=reason)
            )
            commit()
            summary.refused.append(
                f"#{after} {bundle.producer}"
                f" {bundle.first_sequence}-{bundle.last_sequence}: {reason}"
            )
            continue
        session.execute(
            update(relayed_model)
            .where(relayed_model.id == after)
            .values(forwarded=True, forwarded_at=utc_now())
        )
        commit()
        summary.bundles += 1
        summary.transactions += len(bundle.transactions)
        summary.totals.add(reply)


class ExportStopped(Exception):
    """Writing the files stopped (a full disk, say): ``written`` were written
    and marked, the rest wait for the next export."""

    def __init__(self, written: list[ExportedFile], error: OSError) -> None:
        super().__init__(str(error))
        self.written = written
        self.error = error


@dataclass
class ExportedFile:
    path: Path
    producer: str
    first_sequence: int
    last_sequence: int


def export_bundles(
    session: Session,
    relayed_model: type,
    directory: str | Path,
    commit: Callable[[], None] | None = None,
) -> list[ExportedFile]:
    """Write every bundle waiting to be forwarded as a file in ``directory``
    (as the producer signed it, for ``manage.py sync import`` on the central
    server) and mark it forwarded by file; commit after each. A write that
    fails raises ExportStopped with the files written until then."""
    commit = commit or session.commit
    target = Path(directory)
    written: list[ExportedFile] = []
    try:
        target.mkdir(parents=True, exist_ok=True)
        _export_each(session, relayed_model, target, commit, written)
    except OSError as exc:
        session.rollback()
        raise ExportStopped(written, exc) from None
    return written


def _export_each(
    session: Session,
    relayed_model: type,
    target: Path,
    commit: Callable[[], None],
    written: list[ExportedFile],
) -> None:
    after = 0
    while True:
        row = _next_waiting(session, relayed_model, after)
        if row is None:
            return
        after = row.id
        bundle = _stored_bundle(row)
        path = target / (
            f"{bundle.producer}-{bundle.first_sequence:09d}"
            f"-{bundle.last_sequence:09d}.jsonl.gz"
        )
        write_bundle_to(bundle, path)
        now = utc_now()
        session.execute(
            update(relayed_model)
            .where(relayed_model.id == after)
            .values(forwarded=True, forwarded_at=now, exported_at=now)
        )
        commit()
        written.append(
            ExportedFile(
                path, bundle.producer, bundle.first_sequence, bundle.last_sequence
            )
        )


def relay_status(session: Session, relayed_model: type) -> dict[str, Any]:
    """Counts of waiting, forwarded, exported and refused bundles, and the
    refused ones with their reasons."""

    def count(*where: Any) -> int:
        return session.scalar(
            select(func.count()).select_from(relayed_model).where(*where)
        )

    return {
        "waiting": count(*_waiting(relayed_model)),
        "forwarded": count(
            relayed_model.forwarded.is_(True), relayed_model.exported_at.is_(None)
        ),
        "exported": count(relayed_model.exported_at.is_not(None)),
        "refused": list(
            session.scalars(
                select(relayed_model)
                .where(relayed_model.refused.is_not(None))
                .order_by(relayed_model.id)
            )
        ),
        "producers": count_keys(session, relayed_model),
    }


def count_keys(session: Session, relayed_model: type) -> int:
    return session.scalar(select(func.count()).select_from(relayed_model.producer_keys))


def set_aside(
    session: Session, relayed_model: type, bundle_id: int, drop: bool
) -> str | None:
    """Drop a refused bundle (``drop``), or put it back in line; None when done,
    else why not (no such bundle, or one the server did not refuse: only those
    are dropped or retried). The caller commits."""
    row = session.get(relayed_model, bundle_id)
    if row is None:
        return f"no bundle #{bundle_id}"
    if row.refused is None:
        state = "was forwarded" if row.forwarded else "waits to be forwarded"
        return (
            f"bundle #{bundle_id} was not refused by the server (it {state}):"
            " only refused bundles are dropped or retried"
        )
    where = (relayed_model.id == bundle_id, relayed_model.refused.is_not(None))
    if drop:
        session.execute(delete(relayed_model).where(*where))
    else:
        session.execute(update(relayed_model).where(*where).values(refused=None))
    return None

"""The sync API: producers push signed bundles; admins register producers,
follow them and upload carried files."""

from __future__ import annotations

import tempfile

from flask import Blueprint, current_app, g, jsonify, request
from sqlalchemy import select

from sync.client.bundles import BundleError, bundle_from_json
from sync.deliveries import AlreadyImported, DeliverySettings, accept_push, import_file
from sync.models import SyncProducer
from sync.producers import (
    PRODUCER_FIELDS,
    ProducerRefused,
    all_producer_summaries,
    producer_detail,
    register_producer,
)
from sync.receiving import UnknownProducer
from tracker.api import ApiError, boolean_arg, json_object_body
from tracker.auth.tokens import token_required
from tracker.extensions import csrf, db

bp = Blueprint("sync_api", __name__, url_prefix="/api/sync")
csrf.exempt(bp)


def _settings() -> DeliverySettings:
    return DeliverySettings.from_config(current_app.config)


def _bundle_error(exc: BundleError) -> ApiError:
    if exc.field == "signature":
        return ApiError(403, "Forbidden", str(exc), field="signature")
    return ApiError(400, "Invalid value", str(exc), field=exc.field)


@bp.post("/push")
def push():
    """Take a producer's signed bundle; the signature is the credential."""
    body = json_object_body(current_app.config["SYNC_MAX_BODY_BYTES"])
    limit = current_app.config["SYNC_MAX_BATCH"]
    transactions = body.get("transactions")
    if isinstance(transactions, list) and len(transactions) > limit:
        raise ApiError(
            413,
            "Batch too large",
            f"transactions: at most {limit} per bundle",
            field="transactions",
        )
    try:
        bundle = bundle_from_json(body)
        reply = accept_push(db.session, bundle, _settings(), db.session.commit)
    except BundleError as exc:
        db.session.rollback()
        raise _bundle_error(exc) from None
    except UnknownProducer as exc:
        db.session.rollback()
        raise ApiError(403, "Forbidden", str(exc), field="manifest.producer") from None
    return jsonify(reply)


@bp.get("/producers")
@token_required
def list_producers():
    """Every producer with its cursors, lag and problem counts."""
    return jsonify({"items": all_producer_summaries(db.session)})


def _producer_or_404(producer_id: str) -> SyncProducer:
    producer = db.session.scalar(
        select(SyncProducer).where(SyncProducer.producer_id == producer_id)
    )
    if producer is None:
        raise ApiError(404, "Not found", f"no producer {producer_id!r}")
    return producer


@bp.get("/producers/<producer_id>")
@token_required
def show_producer(producer_id: str):
    """One producer with its parked, quarantined and rejected transactions."""
    return jsonify(producer_detail(db.session, _producer_or_404(producer_id)))


@bp.post("/producers")
@token_required
def create_producer():
    """Register a producer; the answer holds its credential, shown only once."""
    body = json_object_body(current_app.config["API_MAX_BODY_BYTES"])
    unknown = set(body) - set(PRODUCER_FIELDS.rules)
    if unknown:
        field = sorted(unknown)[0]
        raise ApiError(400, "Unexpected data", f"{field}: unknown field", field=field)
    encrypt = PRODUCER_FIELDS.clean("encrypt", body.get("encrypt", False))
    try:
        producer, credential, key = register_producer(
            db.session,
            body.get("producer_id"),
            body.get("description", ""),
            body.get("public_key"),
            encrypt,
        )
    except ProducerRefused as exc:
        raise ApiError(400, "Invalid value", str(exc), field=exc.field) from None
    db.session.commit()
    answer = producer_detail(db.session, producer)
    answer["credential"] = credential
    answer["encryption_key"] = key
    return jsonify(answer), 201


@bp.post("/producers/<producer_id>/active")
@token_required
def set_producer_active(producer_id: str):
    """Enable (``?active=true``) or disable a producer's pushes and imports."""
    active = boolean_arg("active")
    if active is None:
        raise ApiError(400, "Invalid value", "active: true or false", field="active")
    producer = _producer_or_404(producer_id)
    producer.active = active
    db.session.commit()
    return jsonify(producer_detail(db.session, producer))


@bp.post("/files")
@token_required
def upload_file():
    """Import a carried bundle file sent as the raw request body."""
    limit = current_app.config["SYNC_MAX_BODY_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "Body too large", f"body: at most {limit} bytes")
    name = (request.args.get("name") or "upload.jsonl.gz")[:300]
    with tempfile.NamedTemporaryFile(suffix=".jsonl.gz") as spool:
        copied = 0
        while block := request.stream.read(1 << 20):
            copied += len(block)
            if copied > limit:
                raise ApiError(413, "Body too large", f"body: at most {limit} bytes")
            spool.write(block)
        spool.flush()
        try:
            reply = import_file(
                db.session,
                spool.name,
                _settings(),
                db.session.commit,
                current_app.config["SYNC_MAX_FILE_BYTES"],
                started_by_id=g.api_user.id,
                name=name,
            )
        except AlreadyImported as exc:
            return jsonify({"already_imported": True, "message": str(exc)})
        except BundleError as exc:
            raise _bundle_error(exc) from None
        except UnknownProducer as exc:
            raise ApiError(
                403, "Forbidden", str(exc), field="manifest.producer"
            ) from None
    return jsonify(reply)

"""The sync API: producers push signed bundles; admins register producers,
follow them and upload carried files."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for
from flask_login import current_user
from sqlalchemy import select

from sync.conflicts import (
    STATES,
    ConflictRefused,
    conflict_item,
    conflicts_statement,
    resolve_conflict,
    user_names,
)
from sync.deliveries import AlreadyImported, DeliverySettings, accept_push, import_file
from sync.models import RESOLUTIONS, SyncProducer
from sync.producers import (
    PRODUCER_FIELDS,
    ProducerRefused,
    all_producer_summaries,
    held_hashes,
    producer_detail,
    producer_position,
    register_producer,
    reprovision_producer,
    supersede_rejected,
)
from sync.reapplying import reapply
from sync.records import (
    SEARCH_LENGTH,
    BadCursor,
    cursor_of,
    producer_names,
    read_cursor,
    record_item,
    records_statement,
)
from sync.verifying import UnknownProducer, bound_retired_keys
from sync.wire.bounded import JsonRefused
from sync.wire.bundles import (
    BundleError,
    BundleTooLarge,
    bundle_from_json,
    load_pushed_bundle,
)
from sync.wire.signing import InvalidKey, position_message, verify
from tracker.api import (
    ApiError,
    CappedStream,
    boolean_arg,
    created,
    json_object_body,
    paginated,
    refuse_unknown_keys,
    spooled_body,
)
from tracker.auth.roles import ADMIN, OPERATOR, PUBLIC, VIEWER, access, blueprint_access
from tracker.extensions import csrf, db

bp = Blueprint("sync_api", __name__, url_prefix="/api/sync")
blueprint_access(bp, read=VIEWER, write=ADMIN)
csrf.exempt(bp)


def _settings() -> DeliverySettings:
    return DeliverySettings.from_config(current_app.config)


def _as_json(standing: dict[str, Any]) -> dict[str, Any]:
    """A producer's summary or detail with its last contact as ISO 8601 text."""
    return {
        **standing,
        **{
            name: standing[name].isoformat() if standing[name] else None
            for name in ("last_contact", "credential_changed")
        },
    }


def _bundle_error(exc: BundleError) -> ApiError:
    if isinstance(exc, BundleTooLarge):
        return ApiError(413, "Too large", str(exc), field=exc.field)
    if exc.field == "signature":
        return ApiError(403, "Forbidden", str(exc), field="signature")
    return ApiError(400, "Invalid value", str(exc), field=exc.field)


# A body of at most this many bytes is read whole and parsed at once (within
# the same bounds); a larger one as a stream.
WHOLE_BODY_BYTES = 4 * 1024 * 1024


def _pushed_body() -> Any:
    """The pushed bundle, parsed within the body and batch caps."""
    limit = current_app.config["SYNC_MAX_BATCH"]
    stream = CappedStream(current_app.config["SYNC_MAX_BODY_BYTES"])
    source: Any = stream
    if (request.content_length or WHOLE_BODY_BYTES + 1) <= WHOLE_BODY_BYTES:
        source = b"".join(iter(stream.read, b""))
    try:
        return load_pushed_bundle(source, limit)
    except JsonRefused as exc:
        if exc.field == "transactions" and exc.too_large:
            raise ApiError(
                413,
                "Batch too large",
                f"transactions: at most {limit} per bundle",
                field="transactions",
            ) from None
        if exc.too_large:
            raise ApiError(413, "Body too large", str(exc), field=exc.field) from None
        raise ApiError(400, "Invalid JSON", str(exc), field=exc.field) from None


@bp.post("/push")
@access(PUBLIC)
def push():
    """Take a producer's signed bundle; the signature is the credential."""
    body = _pushed_body()
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
def list_producers():
    """Every producer with its cursors, lag and problem counts."""
    return jsonify({"items": [_as_json(s) for s in all_producer_summaries(db.session)]})


def _producer_or_404(producer_id: str) -> SyncProducer:
    return db.one_or_404(
        select(SyncProducer).filter_by(producer_id=producer_id),
        description=f"no producer {producer_id!r}",
    )


@bp.get("/producer-keys")
def producer_keys():
    """The active producers' public keys, for a middleman to check signatures."""
    producers = db.session.scalars(
        select(SyncProducer)
        .where(SyncProducer.active.is_(True))
        .order_by(SyncProducer.producer_id)
    )
    return jsonify(
        {
            "items": [
                {"producer_id": p.producer_id, "public_key": p.public_key}
                for p in producers
            ]
        }
    )


@bp.get("/producers/<producer_id>")
def show_producer(producer_id: str):
    """One producer with its parked, quarantined and rejected transactions."""
    detail = producer_detail(db.session, _producer_or_404(producer_id))
    return jsonify(_as_json(detail))


@bp.post("/producers")
def create_producer():
    """Register a producer; the answer holds its credential, shown only once."""
    body = json_object_body(current_app.config["API_MAX_BODY_BYTES"])
    refuse_unknown_keys(body, tuple(PRODUCER_FIELDS.rules), "producer")
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
    answer = _as_json(producer_detail(db.session, producer))
    answer["credential"] = credential
    answer["encryption_key"] = key
    return created(
        answer, url_for("sync_api.show_producer", producer_id=producer.producer_id)
    )


@bp.post("/producers/<producer_id>/active")
def set_producer_active(producer_id: str):
    """Enable (``?active=true``, or ``{"active": true}``) or disable a
    producer's pushes and imports."""
    raw = request.args.get("active")
    if raw is not None and raw not in ("true", "false"):
        raise ApiError(400, "Invalid value", "active: true or false", field="active")
    active = None if raw is None else raw == "true"
    if request.content_length:
        body = json_object_body(current_app.config["API_MAX_BODY_BYTES"])
        refuse_unknown_keys(body, ("active",), "producer")
        given = body.get("active", active)
        if active is not None and given != active:
            raise ApiError(
                400,
                "Invalid value",
                "active: the query and the body say otherwise: give it once",
                field="active",
            )
        active = given
    if not isinstance(active, bool):
        raise ApiError(400, "Invalid value", "active: true or false", field="active")
    producer = _producer_or_404(producer_id)
    producer.active = active
    db.session.commit()
    return jsonify(_as_json(producer_detail(db.session, producer)))


@bp.post("/files")
@access(OPERATOR)
def upload_file():
    """Import a carried bundle file sent as the raw request body."""
    limit = current_app.config["SYNC_MAX_BODY_BYTES"]
    name = (request.args.get("name") or "upload.jsonl.gz")[:300]
    with spooled_body(limit, suffix=".jsonl.gz") as path:
        try:
            reply = import_file(
                db.session,
                path,
                _settings(),
                db.session.commit,
                current_app.config["SYNC_MAX_FILE_BYTES"],
                started_by_id=current_user.id,
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


def _query_text(name: str, max_length: int = 100) -> str | None:
    value = request.args.get(name)
    if value is not None and not 0 < len(value) <= max_length:
        raise ApiError(
            400, "Invalid value", f"{name}: 1 to {max_length} characters", field=name
        )
    return value


@bp.post("/reapply")
@access(OPERATOR)
def reapply_set_aside():
    """Re-apply held and quarantined transactions whose cause is fixed; the
    filters come as query arguments or as a JSON object."""
    producer_id, model = _query_text("producer"), _query_text("model")
    held_only = boolean_arg("held_only")
    if request.content_length:
        body = json_object_body(current_app.config["API_MAX_BODY_BYTES"])
        refuse_unknown_keys(body, REAPPLY_FILTERS, "reapply")
        producer_id = _text_field(body, "producer", producer_id)
        model = _text_field(body, "model", model)
        held_only = body.get("held_only", held_only)
        if held_only is not None and not isinstance(held_only, bool):
            raise ApiError(
                400, "Invalid value", "held_only: true or false", field="held_only"
            )
    if producer_id is not None:
        _producer_or_404(producer_id)
    totals = reapply(
        db.session,
        current_app.config["SYNC_MODELS"],
        db.session.commit,
        producer_id,
        model,
        quarantined=not held_only,
    )
    return jsonify(vars(totals))


REAPPLY_FILTERS = ("producer", "model", "held_only")


def _text_field(body: dict[str, Any], name: str, default: str | None) -> str | None:
    value = body.get(name, default)
    if value is not None and not (isinstance(value, str) and 0 < len(value) <= 100):
        raise ApiError(
            400, "Invalid value", f"{name}: a text of 1 to 100 characters", field=name
        )
    return value


POSITION_SEQUENCES = 1000


@bp.post("/position")
@access(PUBLIC)
def position():
    """Tell a device, signed by its credential, the highest sequence held for it,
    so that a reinstalled device continues after it."""
    body = json_object_body(current_app.config["API_MAX_BODY_BYTES"])
    refuse_unknown_keys(
        body, ("producer", "signature", "sequences"), "position request"
    )
    producer_id, signature = body.get("producer"), body.get("signature")
    for name, value in (("producer", producer_id), ("signature", signature)):
        if not isinstance(value, str) or not 0 < len(value) <= 200:
            raise ApiError(400, "Invalid value", f"{name}: a text", field=name)
    sequences = body.get("sequences", [])
    if (
        not isinstance(sequences, list)
        or len(sequences) > POSITION_SEQUENCES
        or not all(type(number) is int and 0 < number < 2**63 for number in sequences)
    ):
        raise ApiError(
            400,
            "Invalid value",
            f"sequences: a list of at most {POSITION_SEQUENCES} sequence numbers",
            field="sequences",
        )
    producer = db.session.scalar(
        select(SyncProducer).filter_by(producer_id=producer_id)
    )
    if producer is None or not producer.active:
        raise ApiError(
            403,
            "Forbidden",
            f"producer {producer_id!r} is not registered or is disabled",
            field="producer",
        )
    try:
        valid = verify(producer.public_key, position_message(producer_id), signature)
    except InvalidKey:
        valid = False
    if not valid:
        raise ApiError(
            403,
            "Forbidden",
            f"not signed by producer {producer_id!r} with its current credential",
            field="signature",
        )
    # The device continues after what the server holds: its old credential,
    # if retired, signs nothing later.
    bound_retired_keys(producer, producer.highest_received)
    answer = producer_position(producer)
    if sequences:
        # What the server holds under numbers a wiped device used again: the
        # same hash was delivered, another is another change.
        answer["hashes"] = held_hashes(db.session, producer, sequences)
        # The device renumbers its unsent changes held under numbers the
        # server gave other changes: their rejected copies are superseded.
        supersede_rejected(db.session, producer, sequences)
    db.session.commit()
    return jsonify(answer)


@bp.post("/producers/<producer_id>/credential")
def new_credential(producer_id: str):
    """Re-provision a producer: a new credential, the producer enabled, the
    old credential retired (or void with ``void_old_key``); the answer holds
    the credential, shown only once."""
    body = json_object_body(current_app.config["API_MAX_BODY_BYTES"], True)
    refuse_unknown_keys(body, ("public_key", "void_old_key"), "credential")
    void_old = body.get("void_old_key", False)
    if not isinstance(void_old, bool):
        raise ApiError(
            400, "Invalid value", "void_old_key: true or false", field="void_old_key"
        )
    _producer_or_404(producer_id)
    try:
        producer, credential = reprovision_producer(
            db.session, producer_id, body.get("public_key"), void_old
        )
    except ProducerRefused as exc:
        raise ApiError(400, "Invalid value", str(exc), field=exc.field) from None
    db.session.commit()
    answer = _as_json(producer_detail(db.session, producer))
    answer["credential"] = credential
    response = jsonify(answer)
    response.headers["Cache-Control"] = "no-store"
    return response


RECORDS_PAGE, RECORDS_MAX_PAGE = 100, 1000


def _since_arg() -> datetime | None:
    value = request.args.get("since")
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ApiError(
            400,
            "Invalid value",
            "since: an ISO 8601 time with its offset, e.g. 2026-12-01T10:00:00Z",
            field="since",
        )
    return moment


def _after_arg() -> tuple[datetime, int] | None:
    value = request.args.get("after")
    if value is None:
        return None
    try:
        return read_cursor(value[:200])
    except BadCursor:
        raise ApiError(
            400,
            "Invalid value",
            "after: the next of an earlier answer",
            field="after",
        ) from None


@bp.get("/records")
def list_records():
    """The synchronised records, by model, changed since a time or after a
    cursor, matching a text; deleted ones when polling or asked."""
    since, after = _since_arg(), _after_arg()
    include_deleted = boolean_arg("include_deleted")
    if include_deleted is None:
        # A poller must learn of deletes.
        include_deleted = since is not None or after is not None
    statement = records_statement(
        _query_text("model"),
        since,
        _query_text("q", SEARCH_LENGTH),
        include_deleted,
        db.session.get_bind().dialect.name,
        after,
    )
    names = producer_names(db.session)
    last: list[Any] = []

    def item(record) -> dict[str, Any]:
        last[:] = [record]
        return record_item(record, names)

    answer = paginated(statement, item, RECORDS_PAGE, RECORDS_MAX_PAGE)
    answer["next"] = cursor_of(last[0]) if last else None
    return jsonify(answer)


CONFLICTS_PAGE, CONFLICTS_MAX_PAGE = 100, 1000
CONFLICT_STATES = (*STATES, "all")


def _conflict_json(conflict) -> dict[str, Any]:
    return conflict_item(conflict, producer_names(db.session), user_names(db.session))


@bp.get("/conflicts")
def list_conflicts():
    """Concurrent changes of one field by two producers, by model, producer
    and state (open by default)."""
    status = request.args.get("status", "open")
    if status not in CONFLICT_STATES:
        raise ApiError(
            400,
            "Invalid value",
            f"status: one of {', '.join(CONFLICT_STATES)}",
            field="status",
        )
    producer_id = _query_text("producer")
    producer = _producer_or_404(producer_id) if producer_id is not None else None
    statement = conflicts_statement(
        _query_text("model"),
        producer.id if producer else None,
        None if status == "all" else status,
    )
    producers, users = producer_names(db.session), user_names(db.session)
    return jsonify(
        paginated(
            statement,
            lambda conflict: conflict_item(conflict, producers, users),
            CONFLICTS_PAGE,
            CONFLICTS_MAX_PAGE,
        )
    )


@bp.post("/conflicts/<int:conflict_id>/resolve")
@access(OPERATOR)
def resolve(conflict_id: int):
    """Resolve a conflict: keep the applied value, take the other one (applied
    to the record at once), or mark it resolved."""
    body = json_object_body(current_app.config["API_MAX_BODY_BYTES"])
    refuse_unknown_keys(body, ("action",), "resolution")
    action = body.get("action")
    if action not in RESOLUTIONS:
        raise ApiError(
            400,
            "Invalid value",
            f"action: one of {', '.join(RESOLUTIONS)}",
            field="action",
        )
    try:
        conflict = resolve_conflict(db.session, conflict_id, action, current_user.id)
    except ConflictRefused as exc:
        db.session.rollback()
        raise ApiError(409, "Conflict", str(exc), field="action") from None
    if conflict is None:
        db.session.rollback()
        raise ApiError(404, "Not found", f"no conflict {conflict_id}")
    db.session.commit()
    return jsonify(_conflict_json(conflict))

"""The sync page: producers, their cursors and problems, imported files."""

from __future__ import annotations

import tempfile
from typing import Any

from babel.units import format_unit
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import format_datetime, get_locale
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from werkzeug.exceptions import RequestEntityTooLarge

from sync.conflicts import (
    STATES,
    ConflictRefused,
    conflict_models,
    conflicts_statement,
    open_conflict_total,
    resolve_conflict,
    user_names,
)
from sync.deliveries import (
    APPLY_OPERATION,
    IMPORT_OPERATION,
    PUSH_OPERATION,
    AlreadyImported,
    DeliverySettings,
    import_file,
)
from sync.models import (
    KEEP_APPLIED,
    RESOLUTIONS,
    TAKE_OTHER,
    ImportedFile,
    SyncProducer,
)
from sync.producers import (
    ProducerRefused,
    all_producer_summaries,
    producer_detail,
    register_producer,
    reprovision_producer,
)
from sync.reapplying import reapply
from sync.records import (
    SEARCH_LENGTH,
    csv_lines,
    json_lines,
    model_counts,
    model_exists,
    own_fields,
    producer_names,
    records_statement,
)
from sync.verifying import UnknownProducer
from sync.wire.bundles import BundleError
from tracker.auth.roles import ADMIN, OPERATOR, VIEWER, access, blueprint_access
from tracker.batch.models import BatchOperation
from tracker.extensions import db

bp = Blueprint(
    "sync",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/sync/static",
)
blueprint_access(bp, read=VIEWER, write=ADMIN)
RECENT_FILES = 50
RECENT_OPERATIONS = 20
SYNC_OPERATIONS = (PUSH_OPERATION, IMPORT_OPERATION, APPLY_OPERATION)
UPLOAD_NAME_LENGTH = 300


@bp.url_value_preprocessor
def cap_upload(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    """Cap the upload's size before anything reads the body.

    This runs before every ``before_request`` function, CSRF's included, which
    parses the form: an oversized body is refused unread (then flashed below).
    """
    if endpoint == "sync.upload":
        request.max_content_length = current_app.config["SYNC_MAX_BODY_BYTES"]


@bp.errorhandler(RequestEntityTooLarge)
def upload_too_large(_exc: RequestEntityTooLarge):
    """Explain an oversized upload on the page instead of an error page."""
    flash(
        _(
            "The file is larger than %(size)s, the most this page takes:"
            " import it on the server with manage.py sync import.",
            size=_size(current_app.config["SYNC_MAX_BODY_BYTES"]),
        ),
        "error",
    )
    return redirect(url_for("sync.index"))


def _size(size: int) -> str:
    """A size in bytes as the locale writes kilobytes or megabytes."""
    if size >= 1024**2:
        value, unit = round(size / 1024**2, 1), "digital-megabyte"
    else:
        value, unit = round(size / 1024, 1), "digital-kilobyte"
    return format_unit(value, unit, length="short", locale=get_locale())


def _producer_or_404(producer_id: str) -> SyncProducer:
    return db.one_or_404(
        select(SyncProducer).filter_by(producer_id=producer_id),
        description=_("No producer with this id."),
    )


def _ranges_text(missing: list[list[int]]) -> str:
    return ", ".join(
        f"{first}\N{EN DASH}{last}" if first != last else str(first)
        for first, last in missing
    )


def _render_index(
    issued: dict[str, Any] | None = None, entered: dict[str, Any] | None = None
):
    files = db.session.execute(
        select(ImportedFile, SyncProducer.producer_id)
        .outerjoin(SyncProducer, ImportedFile.producer_id == SyncProducer.id)
        .order_by(ImportedFile.imported.desc(), ImportedFile.id.desc())
        .limit(RECENT_FILES)
    ).all()
    operations = db.session.scalars(
        select(BatchOperation)
        .where(BatchOperation.operation_type.in_(SYNC_OPERATIONS))
        .order_by(BatchOperation.id.desc())
        .limit(RECENT_OPERATIONS)
    ).all()
    producers = all_producer_summaries(db.session)
    set_aside = {
        "held": sum(row["held"] for row in producers),
        "quarantined": sum(row["quarantined"] for row in producers),
    }
    response = make_response(
        render_template(
            "sync/index.html",
            producers=producers,
            sync_models=current_app.config["SYNC_MODELS"],
            set_aside=set_aside if any(set_aside.values()) else None,
            files=files,
            file_count=db.session.scalar(select(func.count(ImportedFile.id))),
            open_conflicts=open_conflict_total(db.session),
            operations=operations,
            max_upload=_size(current_app.config["SYNC_MAX_BODY_BYTES"]),
            issued=issued,
            entered=entered or {},
        )
    )
    if issued:
        # The credential is on this page only: keep it out of every cache.
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/sync")
def index():
    """Show producers with their cursors and problems, files and sync jobs."""
    return _render_index()


@bp.get("/sync/producers/<producer_id>")
def producer(producer_id: str):
    """Show one producer with its parked, quarantined and rejected transactions."""
    detail = producer_detail(db.session, _producer_or_404(producer_id))
    return render_template("sync/producer.html", producer=detail)


@bp.post("/sync/producers/<producer_id>/credential")
def new_credential(producer_id: str):
    """Re-provision a producer; its new credential is shown on this answer only."""
    _producer_or_404(producer_id)
    producer, credential = reprovision_producer(db.session, producer_id)
    db.session.commit()
    response = make_response(
        render_template(
            "sync/producer.html",
            producer=producer_detail(db.session, producer),
            credential=credential,
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/sync/producers/<producer_id>/active")
def set_active(producer_id: str):
    """Enable or disable a producer: a disabled one has pushes and imports refused."""
    producer = _producer_or_404(producer_id)
    active = request.form.get("active")
    if active not in ("yes", "no"):
        flash(_("Nothing changed: active must be yes or no."), "error")
        return redirect(url_for("sync.producer", producer_id=producer.producer_id))
    producer.active = active == "yes"
    db.session.commit()
    if producer.active:
        flash(_("%(producer)s is enabled.", producer=producer.producer_id), "success")
    else:
        flash(
            _(
                "%(producer)s is disabled: its pushes and files are refused.",
                producer=producer.producer_id,
            ),
            "success",
        )
    if request.form.get("back") == "index":
        return redirect(url_for("sync.index"))
    return redirect(url_for("sync.producer", producer_id=producer.producer_id))


@bp.post("/sync/reapply")
@access(OPERATOR)
def reapply_set_aside():
    """Re-apply held and quarantined transactions whose cause is fixed."""
    totals = reapply(db.session, current_app.config["SYNC_MODELS"], db.session.commit)
    flash(
        _(
            "Re-applied %(released)d: %(applied)d applied, %(parked)d parked;"
            " still held %(held)d, still quarantined %(quarantined)d.",
            released=totals.released,
            applied=totals.applied,
            parked=totals.parked,
            held=totals.still_held,
            quarantined=totals.still_quarantined,
        ),
        "error" if totals.still_held or totals.still_quarantined else "info",
    )
    return redirect(url_for("sync.index"))


@bp.post("/sync/producers")
def register():
    """Register a producer; its credential and key are shown on this answer only."""
    entered = {
        "producer_id": request.form.get("producer_id", "").strip(),
        "description": request.form.get("description", "").strip(),
        "encrypt": request.form.get("encrypt") == "yes",
    }
    try:
        producer, credential, key = register_producer(
            db.session,
            entered["producer_id"],
            entered["description"],
            encrypt=entered["encrypt"],
        )
    except ProducerRefused as exc:
        db.session.rollback()
        flash(_("The producer was not registered: %(reason)s", reason=exc), "error")
        return _render_index(entered=entered)
    db.session.commit()
    # Rendered, not redirected: the credential stays out of URLs and sessions.
    return _render_index(
        issued={
            "producer_id": producer.producer_id,
            "credential": credential,
            "encryption_key": key,
        }
    )


@bp.post("/sync/files")
@access(OPERATOR)
def upload():
    """Import a carried bundle file and say in one line what it brought."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash(_("Choose a file to import."), "error")
        return redirect(url_for("sync.index"))
    # Some browsers send the whole path of the file: keep its name only.
    name = upload.filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = name[:UPLOAD_NAME_LENGTH] or "upload.jsonl.gz"
    with tempfile.NamedTemporaryFile(suffix=".jsonl.gz") as spool:
        upload.save(spool)
        spool.flush()
        try:
            reply = import_file(
                db.session,
                spool.name,
                DeliverySettings.from_config(current_app.config),
                db.session.commit,
                current_app.config["SYNC_MAX_FILE_BYTES"],
                started_by_id=current_user.id,
                name=name,
            )
        except AlreadyImported as exc:
            flash(_already_imported(exc), "info")
        except (BundleError, UnknownProducer) as exc:
            flash(_("%(name)s was refused: %(reason)s", name=name, reason=exc), "error")
        else:
            problems = reply["quarantined"] or reply["rejected"] or reply["held"]
            flash(_imported(name, reply), "warning" if problems else "success")
    return redirect(url_for("sync.index"))


def _already_imported(exc: AlreadyImported) -> str:
    record = exc.record
    return _(
        "%(name)s was already imported on %(when)s (%(summary)s): nothing to do.",
        name=record.name,
        when=format_datetime(record.imported),
        summary=record.summary,
    )


def _imported(name: str, reply: dict[str, Any]) -> str:
    text = _(
        "Imported %(name)s from %(producer)s, transactions %(sequences)s:"
        " %(new)d new, %(duplicates)d already received, %(applied)d applied,"
        " %(parked)d parked, %(quarantined)d quarantined, %(rejected)d rejected.",
        name=name,
        producer=reply["producer"],
        sequences=_ranges_text(
            [[reply["first_sequence"], reply["acknowledged_through"]]]
        ),
        new=reply["new"],
        duplicates=reply["duplicates"],
        applied=reply["applied"],
        parked=reply["parked"],
        quarantined=len(reply["quarantined"]),
        rejected=len(reply["rejected"]),
    )
    if reply["missing"]:
        text += " " + _(
            "Waiting for %(ranges)s.", ranges=_ranges_text(reply["missing"])
        )
    for warning in reply["warnings"]:
        text += " " + warning
    return text


RECORDS_PER_PAGE = 50


@bp.get("/sync/records")
def records():
    """Browse the synchronised records of a model, with a search."""
    models = model_counts(db.session)
    model = request.args.get("model") or (models[0][0] if models else None)
    text = request.args.get("q", "").strip()[:SEARCH_LENGTH]
    pagination = None
    if model is not None:
        pagination = db.paginate(
            records_statement(
                model, text=text or None, dialect=db.session.get_bind().dialect.name
            ),
            per_page=RECORDS_PER_PAGE,
            error_out=False,
        )
    return render_template(
        "sync/records.html",
        models=models,
        model=model,
        text=text,
        pagination=pagination,
        producers=producer_names(db.session),
        open_conflicts=open_conflict_total(db.session),
        own_fields=own_fields,
    )


def _export(model: str, lines, mimetype: str, suffix: str) -> Response:
    if not model.isidentifier() or not model_exists(db.session, model):
        abort(404, description=_("No record of this model."))
    body = stream_with_context(lines(db.session, model))
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{model}.{suffix}"'
    return response


@bp.get("/sync/records/<model>.csv")
def records_csv(model: str):
    """Stream a model's records as CSV, one column per field."""
    return _export(model, csv_lines, "text/csv", "csv")


@bp.get("/sync/records/<model>.jsonl")
def records_jsonl(model: str):
    """Stream a model's records as JSON lines, as the API gives each."""
    return _export(model, json_lines, "application/x-ndjson", "jsonl")


CONFLICTS_PER_PAGE = 50
CONFLICT_STATES = (*STATES, "all")


def _conflict_filters(source) -> dict[str, str]:
    """The list's filters as given (query or form), each checked."""
    status = source.get("status", "open")
    filters = {
        "model": source.get("model", "").strip()[:100],
        "producer": source.get("producer", "").strip()[:100],
        "status": status if status in CONFLICT_STATES else "open",
    }
    page = source.get("page", "")
    if page.isdigit() and 1 < int(page) < 2**31:
        filters["page"] = page
    return {name: value for name, value in filters.items() if value}


@bp.get("/sync/conflicts")
def conflicts():
    """List conflicting changes of one field by two producers, with filters."""
    filters = _conflict_filters(request.args)
    producers = producer_names(db.session)
    producer_row = next(
        (row for row, name in producers.items() if name == filters.get("producer")),
        None,
    )
    if filters.get("producer") and producer_row is None:
        abort(404, description=_("No producer with this id."))
    status = filters["status"]
    pagination = db.paginate(
        conflicts_statement(
            filters.get("model"), producer_row, None if status == "all" else status
        ),
        page=int(filters.get("page", 1)),
        per_page=CONFLICTS_PER_PAGE,
        error_out=False,
    )
    return render_template(
        "sync/conflicts.html",
        pagination=pagination,
        filters=filters,
        listed={name: value for name, value in filters.items() if name != "page"},
        models=conflict_models(db.session),
        producers=producers,
        users=user_names(db.session),
        open_total=open_conflict_total(db.session),
    )


def _resolved(action: str, number: int) -> str:
    if action == KEEP_APPLIED:
        return _(
            "Conflict %(number)d resolved: the applied value stays.", number=number
        )
    if action == TAKE_OTHER:
        return _(
            "Conflict %(number)d resolved: the other value is now in the record.",
            number=number,
        )
    return _("Conflict %(number)d marked resolved.", number=number)


@bp.post("/sync/conflicts/<int:conflict_id>/resolve")
@access(OPERATOR)
def resolve(conflict_id: int):
    """Resolve a conflict and go back to the list as it was filtered."""
    action = request.form.get("action")
    back = redirect(url_for("sync.conflicts", **_conflict_filters(request.form)))
    if action not in RESOLUTIONS:
        flash(_("Choose how to resolve the conflict."), "error")
        return back
    try:
        conflict = resolve_conflict(db.session, conflict_id, action, current_user.id)
    except ConflictRefused as exc:
        db.session.rollback()
        flash(_("The conflict was not resolved: %(reason)s", reason=exc), "error")
        return back
    if conflict is None:
        db.session.rollback()
        abort(404, description=_("No conflict with this number."))
    db.session.commit()
    flash(_resolved(action, conflict_id), "success")
    return back

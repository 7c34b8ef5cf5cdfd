"""The allocation admin API: records, the ledger, usage charts and usage uploads."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from allocation import DOMAIN
from allocation.ledger import LedgerFilter, ledger, pool_usage_by_day
from allocation.models import AllocationPeriod, AllocationPool
from allocation.records import (
    COLLECTIONS,
    Collection,
    duplicate_field,
    parse_body,
    serialize,
)
from allocation.serialize import ledger_line
from allocation.usage_jobs import (
    IMPORT_KINDS,
    ImportRefused,
    UsageImportSettings,
    run_usage_import,
    sacct_options,
)
from tracker.api import (
    ApiError,
    created,
    invalid,
    json_object_body,
    paginated,
    text_lines_body,
)
from tracker.audit.models import AuditEvent
from tracker.auth.roles import ADMIN, OPERATOR, VIEWER, access, blueprint_access
from tracker.batch.serialize import batch_operation_summary
from tracker.extensions import csrf, db

bp = Blueprint("allocation_api", __name__)
blueprint_access(bp, read=VIEWER, write=ADMIN)
csrf.exempt(bp)
PREFIX = "/api/allocation"


def _body() -> dict:
    return json_object_body(current_app.config["API_MAX_BODY_BYTES"])


def _record_or_404(collection: Collection, item_id: int):
    return db.get_or_404(
        collection.model,
        item_id,
        description=f"no {collection.label} with id {item_id}",
    )


def _commit_or_conflict(message: str) -> None:
    """Commit; a constraint the database refuses becomes a 409, nothing stored."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ApiError(409, "Conflict", message) from None


def _refuse_duplicates(collection: Collection, values: dict, existing=None) -> None:
    duplicate = duplicate_field(db.session, collection, values, existing)
    if duplicate is not None:
        raise ApiError(
            409,
            "Conflict",
            f"{duplicate}: another {collection.label} already has this value",
            field=duplicate,
        )


def _list_view(collection: Collection):
    def view():
        config = current_app.config
        statement = select(collection.model).order_by(collection.model.id)
        return jsonify(
            paginated(
                statement,
                serialize,
                config["API_PAGE_SIZE"],
                config["API_MAX_PAGE_SIZE"],
            )
        )

    view.__doc__ = f"List {collection.name} a page at a time."
    return view


def _create_view(collection: Collection):
    def view():
        values = parse_body(db.session, collection, _body())
        _refuse_duplicates(collection, values)
        record = collection.model(**values)
        db.session.add(record)
        _commit_or_conflict(f"the {collection.label} conflicts with another record")
        return created(
            serialize(record),
            url_for(f"allocation_api.{collection.name}_show", item_id=record.id),
        )

    view.__doc__ = f"Create a {collection.label}."
    return view


def _show_view(collection: Collection):
    def view(item_id: int):
        return jsonify(serialize(_record_or_404(collection, item_id)))

    view.__doc__ = f"Show a {collection.label}."
    return view


def _update_view(collection: Collection):
    def view(item_id: int):
        body = _body()
        record = _record_or_404(collection, item_id)
        values = parse_body(db.session, collection, body, existing=record)
        _refuse_duplicates(collection, values, existing=record)
        for name, value in values.items():
            setattr(record, name, value)
        _commit_or_conflict(
            f"the change conflicts with another record or with what uses this "
            f"{collection.label}"
        )
        return jsonify(serialize(record))

    view.__doc__ = f"Change some fields of a {collection.label}."
    return view


def _delete_view(collection: Collection):
    def view(item_id: int):
        db.session.delete(_record_or_404(collection, item_id))
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            raise ApiError(
                409,
                "In use",
                f"the {collection.label} is still used by other records; "
                "delete those first",
            ) from None
        return "", 204

    view.__doc__ = f"Delete a {collection.label} that nothing uses."
    return view


def _register_collection(collection: Collection) -> None:
    collection_path = f"{PREFIX}/{collection.name}"
    item_path = f"{collection_path}/<int:item_id>"
    for path, suffix, method, factory in (
        (collection_path, "list", "GET", _list_view),
        (collection_path, "create", "POST", _create_view),
        (item_path, "show", "GET", _show_view),
        (item_path, "update", "PATCH", _update_view),
        (item_path, "delete", "DELETE", _delete_view),
    ):
        bp.add_url_rule(
            path,
            endpoint=f"{collection.name}_{suffix}",
            view_func=factory(collection),
            methods=[method],
        )


for _collection in COLLECTIONS:
    _register_collection(_collection)


def _id_list_arg(name: str) -> list[int] | None:
    """Read ``name=1&name=2`` or ``name=1,2`` as a list of ids."""
    raw = [part for value in request.args.getlist(name) for part in value.split(",")]
    raw = [part.strip() for part in raw if part.strip()]
    if not raw:
        return None
    if not all(part.isascii() and part.isdigit() and len(part) <= 9 for part in raw):
        raise invalid(name, "must be one or more integer ids")
    return [int(part) for part in raw]


def _period_ids_arg() -> list[int] | None:
    """``period_id`` as ids, or ``period`` as names (``period=2100Q1,2100Q2``);
    a name that no period has is refused, never ignored."""
    ids = _id_list_arg("period_id")
    names = [
        part.strip()
        for value in request.args.getlist("period")
        for part in value.split(",")
        if part.strip()
    ]
    if not names:
        return ids
    found = dict(
        db.session.execute(
            select(AllocationPeriod.name, AllocationPeriod.id).where(
                AllocationPeriod.name.in_(names)
            )
        ).all()
    )
    unknown = [name for name in names if name not in found]
    if unknown:
        raise invalid("period", f"no allocation period named {unknown[0][:100]!r}")
    return (ids or []) + [found[name] for name in names]


def near_percent() -> float:
    """Return the used percentage from which a pool counts as near its allocation."""
    return current_app.config["ALLOCATION_NEAR_PERCENT"]


@bp.get(f"{PREFIX}/ledger")
def show_ledger():
    """Answer the balance of each allocation pool, filtered by project, period, pool."""
    which = LedgerFilter(
        project_ids=_id_list_arg("project_id"),
        period_ids=_period_ids_arg(),
        resource_pool_ids=_id_list_arg("resource_pool_id"),
    )
    lines = ledger(db.session, which)
    return jsonify({"items": [ledger_line(line, near_percent()) for line in lines]})


@bp.get(f"{PREFIX}/allocation-pools/<int:item_id>/usage")
def pool_usage(item_id: int):
    """Answer an allocation pool's balance and its usage day by day."""
    pool = db.get_or_404(
        AllocationPool, item_id, description=f"no AllocationPool with id {item_id}"
    )
    (line,) = ledger(db.session, LedgerFilter(pool_ids=[pool.id]))
    days = pool_usage_by_day(db.session, pool)
    return jsonify(
        {
            "ledger": ledger_line(line, near_percent()),
            "days": [{"day": day.isoformat(), "used": used} for day, used in days],
        }
    )


@bp.get(f"{PREFIX}/changes")
def list_changes():
    """List the allocation records' changes (the audit trail's allocation
    domain), newest first."""
    config = current_app.config
    statement = select(AuditEvent).where(AuditEvent.domain == DOMAIN)
    model = request.args.get("model")
    if model:
        statement = statement.where(AuditEvent.target_type == model)
    return jsonify(
        paginated(
            statement.order_by(AuditEvent.id.desc()),
            change_summary,
            config["API_PAGE_SIZE"],
            config["API_MAX_PAGE_SIZE"],
        )
    )


def change_summary(event: AuditEvent) -> dict:
    """An audit event as the change log always showed it."""
    return {
        "id": event.id,
        "changed": event.at.isoformat(),
        "user_id": event.user_id,
        "actor": event.actor,
        "model": event.target_type,
        "object_id": int(event.target_id) if event.target_id.isdigit() else None,
        "action": event.action,
        "changes": event.changes,
        "summary": event.summary,
    }


# The longest line an upload may have: far above any real sacct or snapshot line.
MAX_UPLOAD_LINE_BYTES = 64 * 1024


def _upload(kind: str):
    options = None
    if kind == IMPORT_KINDS[0]:
        # How the file was printed: ?format=JobID,...&delimiter=|&machine=NAME
        options = sacct_options(
            request.args.get("format"),
            request.args.get("delimiter"),
            request.args.get("machine"),
        )
    # The upload (a raw text body or a multipart ``file``) is spooled to disk
    # and read a line at a time: memory does not grow with its size.
    multipart = request.mimetype == "multipart/form-data"
    settings = UsageImportSettings.from_config(current_app.config)
    try:
        with text_lines_body(
            current_app.config["ALLOCATION_UPLOAD_MAX_BYTES"],
            MAX_UPLOAD_LINE_BYTES,
            part="file" if multipart else None,
            # A byte that is not UTF-8 makes its line a problem, not the file.
            bad_bytes_replaced=True,
        ) as lines:
            operation, _report = run_usage_import(
                db.session,
                kind,
                lines,
                settings,
                started_by_id=current_user.id,
                commit=db.session.commit,
                sacct_options=options,
            )
    except ImportRefused as exc:
        # The file's contents: the multipart part that carried them, if one did.
        field = "file" if multipart and exc.field == "body" else exc.field
        raise ApiError(
            exc.status, exc.title, str(exc), field=field, **exc.extra
        ) from None
    return created(
        batch_operation_summary(operation),
        url_for("batch_api.show", operation_id=operation.id),
    )


@bp.post(f"{PREFIX}/usage/sacct")
@access(OPERATOR)
def upload_sacct():
    """Import an uploaded ``sacct --parsable2`` file; answer its batch operation."""
    return _upload(IMPORT_KINDS[0])


@bp.post(f"{PREFIX}/usage/disk")
@access(OPERATOR)
def upload_disk():
    """Import uploaded disk-usage snapshots; answer their batch operation."""
    return _upload(IMPORT_KINDS[1])

"""Pages that create, edit and delete every allocation record, by the API's rules."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from allocation.records import (
    COLLECTIONS,
    Collection,
    choices,
    collection_named,
    duplicate_field,
    field_label,
    form_body,
    form_fields,
    form_values,
    parse_body,
    record_label,
)
from allocation.views import bp
from tracker.auth.roles import ADMIN, access
from tracker.extensions import db
from tracker.fields import FieldError

PAGE_SIZE = 100
# Each kind of record as pages name it: one of them, and the list.
KIND_NAMES = {
    "projects": (_l("project"), _l("Projects")),
    "schemes": (_l("scheme"), _l("Schemes")),
    "grants": (_l("grant"), _l("Grants")),
    "resource-pools": (_l("resource pool"), _l("Resource pools")),
    "machines": (_l("machine"), _l("Machines")),
    "resources": (_l("resource"), _l("Resources")),
    "periods": (_l("allocation period"), _l("Allocation periods")),
    "allocation-pools": (_l("allocation pool"), _l("Allocation pools")),
    "allocations": (_l("allocation"), _l("Allocations")),
    "account-maps": (_l("account map"), _l("Account maps")),
}


def kind_names(collection: Collection) -> tuple[str, str]:
    """(one record, the list) of a kind of record, in the page's language."""
    one, many = KIND_NAMES.get(collection.name, (collection.label, collection.label))
    return str(one), str(many)


def _collection(name: str) -> Collection:
    collection = collection_named(name)
    if collection is None:
        abort(404, description=_("No such kind of record."))
    return collection


def _record(collection: Collection, item_id: int):
    return db.get_or_404(collection.model, item_id, description=_("No such record."))


def _render_form(
    collection: Collection, record, values: dict, errors: dict, status: int = 200
):
    fields = [
        (spec, field_label(spec), choices(db.session, spec) if spec.model else None)
        for spec in form_fields(collection)
    ]
    shown = {spec.name for spec, _label, _options in fields}
    for name in [name for name in errors if name and name not in shown]:
        errors[""] = f"{name}: {errors.pop(name)}"
    return (
        render_template(
            "allocation/record_form.html",
            collection=collection,
            kind=kind_names(collection)[0],
            record=record,
            label=record_label(db.session, record) if record is not None else "",
            fields=fields,
            values=values,
            errors=errors,
        ),
        status,
    )


def _save(collection: Collection, record):
    """Check the submitted form as the API checks a body; store it or say why not."""
    values = request.form.to_dict()
    try:
        body = form_body(collection, request.form, existing=record)
        checked = parse_body(db.session, collection, body, existing=record)
    except FieldError as exc:
        db.session.rollback()
        return _render_form(collection, record, values, {exc.field: exc.message}, 400)
    duplicate = duplicate_field(db.session, collection, checked, record)
    if duplicate is not None:
        message = _("another record already has this value")
        return _render_form(collection, record, values, {duplicate: message}, 409)
    if record is None:
        record = collection.model(**checked)
        db.session.add(record)
    else:
        for name, value in checked.items():
            setattr(record, name, value)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        errors = {"": _("The change conflicts with another record.")}
        return _render_form(collection, None, values, errors, 409)
    flash(_("Saved %(label)s.", label=record_label(db.session, record)), "info")
    return redirect(url_for("allocation.records", name=collection.name))


@bp.get("/records/")
def records_index():
    """List the kinds of allocation record, each with its count."""
    counts = [
        (
            collection,
            kind_names(collection)[1],
            db.session.scalar(select(func.count()).select_from(collection.model)),
        )
        for collection in COLLECTIONS
    ]
    return render_template("allocation/records_index.html", counts=counts)


@bp.get("/records/<name>/")
def records(name: str):
    """List the records of one kind with links to edit or delete each."""
    collection = _collection(name)
    pagination = db.paginate(
        select(collection.model).order_by(collection.model.id),
        per_page=PAGE_SIZE,
        max_per_page=PAGE_SIZE,
        error_out=False,
    )
    rows = list(pagination.items)
    fields = list(form_fields(collection))
    labels = {
        spec.name: dict(choices(db.session, spec)) for spec in fields if spec.model
    }
    return render_template(
        "allocation/records.html",
        collection=collection,
        kinds=kind_names(collection)[1],
        rows=[(row, form_values(collection, row)) for row in rows],
        pagination=pagination,
        fields=[(spec, field_label(spec)) for spec in fields],
        labels=labels,
    )


@bp.get("/records/<name>/new")
@access(ADMIN)
def record_new(name: str):
    """Show an empty form for a new record."""
    return _render_form(_collection(name), None, {}, {})


@bp.post("/records/<name>/new")
def record_create(name: str):
    """Create a record from the form, or show the form again with the fault."""
    return _save(_collection(name), None)


@bp.get("/records/<name>/<int:item_id>/edit")
@access(ADMIN)
def record_edit(name: str, item_id: int):
    """Show a record's form filled in."""
    collection = _collection(name)
    record = _record(collection, item_id)
    return _render_form(collection, record, form_values(collection, record), {})


@bp.post("/records/<name>/<int:item_id>/edit")
def record_update(name: str, item_id: int):
    """Change a record from the form, or show the form again with the fault."""
    collection = _collection(name)
    return _save(collection, _record(collection, item_id))


@bp.get("/records/<name>/<int:item_id>/delete")
@access(ADMIN)
def record_delete_confirm(name: str, item_id: int):
    """Ask before deleting a record."""
    collection = _collection(name)
    record = _record(collection, item_id)
    return render_template(
        "allocation/record_delete.html",
        collection=collection,
        kind=kind_names(collection)[0],
        record=record,
        label=record_label(db.session, record),
    )


@bp.post("/records/<name>/<int:item_id>/delete")
def record_delete(name: str, item_id: int):
    """Delete a record that nothing uses."""
    collection = _collection(name)
    record = _record(collection, item_id)
    label = record_label(db.session, record)
    db.session.delete(record)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        flash(
            _(
                "%(label)s is still used by other records; delete those first.",
                label=label,
            ),
            "error",
        )
        return redirect(url_for("allocation.records", name=collection.name))
    flash(_("Deleted %(label)s.", label=label), "info")
    return redirect(url_for("allocation.records", name=collection.name))

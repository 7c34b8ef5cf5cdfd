"""Finding an instance: by its uuid (its client's credential, which the client
API and the admin API take) or by its number (what pages and viewers use)."""

from __future__ import annotations

from flask import abort
from sqlalchemy import Row, bindparam, select

from tracker.extensions import db
from tracker.instances.models import Instance

_table = Instance.__table__
NOT_LISTED = "no instance with this number or uuid"
LARGEST_NUMBER = 2**31  # an INTEGER column's bound on PostgreSQL
# What a client's GET answers, read as one plain row: no ORM object, no JSON
# columns decoded.
SUMMARY_BY_UUID = select(
    _table.c.uuid,
    _table.c.enabled,
    _table.c.url,
    _table.c.contact,
    _table.c.email,
    _table.c.organisation,
    _table.c.registered,
).where(_table.c.uuid == bindparam("uuid"))


def _stored_form(uuid: str, description: str) -> str:
    if "\x00" in uuid:  # no database stores it: no such instance
        abort(404, description)
    return uuid.strip().lower()


def instance_or_404(uuid: str, description: str) -> Instance:
    """The instance with this uuid (in any letter case), or a 404."""
    return db.one_or_404(
        select(Instance).filter_by(uuid=_stored_form(uuid, description)),
        description=description,
    )


def instance_by_number_or_404(number: int, description: str) -> Instance:
    """The instance with this number (its id), or a 404."""
    if not 0 < number < LARGEST_NUMBER:  # no database column holds it
        abort(404, description)
    return db.get_or_404(Instance, number, description=description)


def instance_by_reference_or_404(reference: str, description: str) -> Instance:
    """The instance ``reference`` names: its number, or its uuid."""
    if reference.isascii() and reference.isdigit():
        return instance_by_number_or_404(int(reference), description)
    return instance_or_404(reference, description)


def summary_or_404(uuid: str, description: str) -> Row:
    """The summary columns of the instance with this uuid, or a 404."""
    uuid = _stored_form(uuid, description)
    with db.engine.connect() as conn:
        if conn.dialect.name != "sqlite":  # which begins none for a SELECT
            # One statement, outside a transaction: no BEGIN and ROLLBACK.
            conn.execution_options(isolation_level="AUTOCOMMIT")
        row = conn.execute(SUMMARY_BY_UUID, {"uuid": uuid}).first()
    if row is None:
        abort(404, description)
    return row

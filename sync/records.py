"""Reading the synchronised records back out: one query for the API, the page
and the exports, filtered by model, update time and a search text."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Text, and_, cast, func, or_, select
from sqlalchemy import true as literal_true
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.orm import Session

from sync.models import SyncProducer, SyncRecord
from tracker.spreadsheet import csv_lines as spreadsheet_lines

EXPORT_ROWS_PER_FETCH = 1000
SEARCH_LENGTH = 200


def records_statement(
    model: str | None = None,
    since: datetime | None = None,
    text: str | None = None,
    include_deleted: bool = False,
    dialect: str = "sqlite",
    after: tuple[datetime, int] | None = None,
) -> Select:
    """The records in update order (then by id), after a cursor if given;
    deleted ones (tombstones) only if asked."""
    statement = select(SyncRecord)
    if not include_deleted:
        statement = statement.where(SyncRecord.deleted.is_(None))
    if after is not None:
        moment, row_id = after
        statement = statement.where(
            or_(
                SyncRecord.updated > moment,
                and_(SyncRecord.updated == moment, SyncRecord.id > row_id),
            )
        )
    if model is not None:
        statement = statement.where(SyncRecord.model == model)
    if since is not None:
        statement = statement.where(SyncRecord.updated > since)
    if text:
        statement = statement.where(
            or_(
                # A whole natural key as stored (the conflicts page links so).
                SyncRecord.natural_key == text,
                _value_matches(SyncRecord.natural_key, text, dialect),
                _value_matches(SyncRecord.fields, text, dialect),
                _parent_key_matches(text, dialect),
            )
        )
    return statement.order_by(SyncRecord.updated, SyncRecord.id)


def _value_matches(column: Any, text: str, dialect: str) -> Any:
    """Whether one of the values of the JSON ``column`` (an object's, not its
    names; a list's items) holds ``text``, as typed (no wildcards)."""
    name = f"{column.key}_values"
    if dialect == "postgresql":
        if column is SyncRecord.natural_key:
            values = func.json_array_elements_text(cast(column, JSON))
            value = values.table_valued("value")
        else:
            value = func.json_each_text(column).table_valued("key", "value")
        value = value.render_derived(name=name)
    else:
        value = func.json_each(column).table_valued("key", "value").alias(name)
    where = [cast(value.c.value, Text).icontains(text, autoescape=True)]
    if column is SyncRecord.fields:
        # A field that points to a parent holds the device's local id of it:
        # the parent is searched by its natural key instead.
        where.append(value.c.key.not_in(_parent_names(dialect)))
    return select(1).select_from(value).where(*where).exists()


def _parent_names(dialect: str) -> Select:
    if dialect == "postgresql":
        names = func.json_object_keys(SyncRecord.parents).table_valued("key")
        names = names.render_derived(name="parent_names")
    else:
        names = func.json_each(SyncRecord.parents).table_valued("key")
        names = names.alias("parent_names")
    return select(names.c.key)


def _parent_key_matches(text: str, dialect: str) -> Any:
    """Whether a parent's natural key holds ``text``, as typed."""
    if dialect == "postgresql":
        each = func.json_each(SyncRecord.parents).table_valued("key", "value")
        each = each.render_derived(name="parents_each")
        items = func.json_array_elements_text(each.c.value.op("->")("natural_key"))
        item = items.table_valued("value").render_derived(name="parent_key_items")
        found = select(1).select_from(each).join(item, literal_true())
        return found.where(item.c.value.icontains(text, autoescape=True)).exists()
    # Each item of a parent's natural key, under $."<field>"."natural_key"
    # (the quotes as this SQLite writes paths; older ones leave them out).
    tree = func.json_tree(SyncRecord.parents).table_valued("path", "atom")
    tree = tree.alias("parents_tree")
    return (
        select(1)
        .select_from(tree)
        .where(
            or_(
                tree.c.path.like('%."natural_key"'),
                tree.c.path.like("%.natural_key"),
            ),
            cast(tree.c.atom, Text).icontains(text, autoescape=True),
        )
        .exists()
    )


def producer_names(session: Session) -> dict[int, str]:
    """Producer ids by row id (a fleet has a few hundred devices at most)."""
    statement = select(SyncProducer.id, SyncProducer.producer_id)
    return dict(session.execute(statement).tuples().all())


def own_fields(record: SyncRecord) -> dict[str, Any]:
    """The record's fields but those that point to a parent: their values are
    the device's local ids of the parent, which mean nothing here (``parents``
    gives each parent by its natural key)."""
    parents = record.parents or {}
    return {name: value for name, value in record.fields.items() if name not in parents}


class BadCursor(ValueError):
    """An ``after`` cursor that no answer gave."""


def cursor_of(record: SyncRecord) -> str:
    """Where a record stands in update order, as an opaque text."""
    text = f"{record.updated.isoformat()}|{record.id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def read_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, row_id = text.split("|")
        parsed = datetime.fromisoformat(moment), int(row_id)
    except (ValueError, UnicodeDecodeError):
        raise BadCursor(cursor) from None
    if parsed[0].tzinfo is None:
        raise BadCursor(cursor)
    return parsed


def record_item(record: SyncRecord, names: dict[int, str]) -> dict[str, Any]:
    """A record as the API and the JSON-lines export give it."""
    return {
        "model": record.model,
        "natural_key": json.loads(record.natural_key),
        "fields": own_fields(record),
        "parents": record.parents or {},
        "version": record.version,
        "schema_version": record.schema_version,
        "producer": names.get(record.producer_id),
        "sequence": record.sequence,
        "created": record.created.isoformat(),
        "updated": record.updated.isoformat(),
        "deleted": record.deleted is not None,
        "deleted_at": record.deleted.isoformat() if record.deleted else None,
    }


def model_counts(session: Session) -> list[tuple[str, int]]:
    """Each model with how many records the server holds of it."""
    return list(
        session.execute(
            select(SyncRecord.model, func.count())
            .where(SyncRecord.deleted.is_(None))
            .group_by(SyncRecord.model)
            .order_by(SyncRecord.model)
        ).all()
    )


def model_exists(session: Session, model: str) -> bool:
    """Whether the server holds a record of ``model`` (deleted ones count: a
    poller may export a model whose records were all deleted)."""
    return (
        session.scalar(select(SyncRecord.id).where(SyncRecord.model == model).limit(1))
        is not None
    )


def _rows(session: Session, statement: Select) -> Iterator[Any]:
    return session.scalars(statement.execution_options(yield_per=EXPORT_ROWS_PER_FETCH))


def json_lines(session: Session, model: str) -> Iterator[str]:
    """MODEL's records, one JSON object a line, read a thousand at a time."""
    names = producer_names(session)
    for record in _rows(session, records_statement(model)):
        yield json.dumps(record_item(record, names), separators=(",", ":")) + "\n"


def _field_names(session: Session, model: str) -> list[str]:
    names: dict[str, None] = {}
    statement = select(SyncRecord.fields).where(
        SyncRecord.model == model, SyncRecord.deleted.is_(None)
    )
    for fields in _rows(session, statement):
        names.update(dict.fromkeys(fields))
    return sorted(names)


def csv_lines(session: Session, model: str) -> Iterator[str]:
    """MODEL's records as CSV: the natural key, one column per field any record
    has, then version, producer and update time; fields hold JSON values, and a
    field that points to a parent its natural key. A cell a spreadsheet would
    run as a formula is quoted (tracker.spreadsheet)."""
    names = _field_names(session, model)
    producers = producer_names(session)

    def rows() -> Iterator[list[Any]]:
        yield ["natural_key", *names, "_version", "_producer", "_updated"]
        for record in _rows(session, records_statement(model)):
            fields = record.fields
            parents = record.parents or {}
            yield [
                record.natural_key,
                *(
                    _cell(parents[name]["natural_key"])
                    if name in parents
                    else _cell(fields.get(name))
                    for name in names
                ),
                record.version,
                producers.get(record.producer_id, ""),
                record.updated.isoformat(),
            ]

    return spreadsheet_lines(rows())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))

"""Writing many rows at once: COPY on PostgreSQL (one statement per row costs
a round trip each), executemany elsewhere."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Table, insert, text
from sqlalchemy.orm import Session

# The records a run changes, in one statement from arrays on PostgreSQL.
UPDATE_RECORDS = text(
    "UPDATE sync_records AS r SET fields = CAST(v.fields AS json),"
    " parents = CAST(v.parents AS json), schema_version = v.schema_version,"
    " version = v.version, producer_id = v.producer_id, sequence = v.sequence,"
    " changes = CAST(v.changes AS json), updated = v.updated,"
    " deleted = v.deleted"
    " FROM unnest(CAST(:row_id AS integer[]), CAST(:fields AS text[]),"
    " CAST(:parents AS text[]), CAST(:schema_version AS integer[]),"
    " CAST(:version AS integer[]), CAST(:producer_id AS integer[]),"
    " CAST(:sequence AS bigint[]), CAST(:changes AS text[]),"
    " CAST(:updated AS timestamptz[]), CAST(:deleted AS timestamptz[]))"
    " AS v(id, fields, parents, schema_version, version, producer_id, sequence,"
    " changes, updated, deleted)"
    " WHERE r.id = v.id"
)
JSON_COLUMNS = ("fields", "parents", "changes")


def is_postgresql(session: Session) -> bool:
    return session.connection().dialect.name == "postgresql"


def insert_rows(
    session: Session,
    table: Table,
    rows: list[dict[str, Any]],
    json_columns: tuple[str, ...] = (),
) -> None:
    """Insert ``rows`` (dicts of column values) in the session's transaction:
    on PostgreSQL with COPY, elsewhere as one executemany. ``json_columns`` hold
    Python values that COPY writes as JSON text."""
    if not is_postgresql(session):
        session.execute(insert(table), rows)
        return
    columns = list(rows[0])
    names = ", ".join(f'"{name}"' for name in columns)
    encoded = [columns.index(name) for name in json_columns]
    driver = session.connection().connection.driver_connection
    with (
        driver.cursor() as cursor,
        cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy,
    ):
        for row in rows:
            values = [row[name] for name in columns]
            for index in encoded:
                values[index] = json.dumps(values[index])
            copy.write_row(values)


def update_records_postgresql(session: Session, updates: list[dict[str, Any]]) -> None:
    """Write the records' changed values (``row_id`` names each) in one UPDATE."""
    arrays: dict[str, list[Any]] = {name: [] for name in updates[0]}
    for values in updates:
        for name, value in values.items():
            arrays[name].append(json.dumps(value) if name in JSON_COLUMNS else value)
    session.execute(UPDATE_RECORDS, arrays)

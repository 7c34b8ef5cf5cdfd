"""SQL expressions over JSON columns that behave alike on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Float, Integer, case, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

from tracker.db_types import VERSION_KEY_FUNCTION, VERSION_PATTERN


def json_number(column, field: str, dialect: str) -> ColumnElement:
    """The field's value if it is a JSON number, else NULL (never a cast error)."""
    value = column[field]
    if dialect == "postgresql":
        is_number = func.json_typeof(value) == "number"
    else:
        is_number = func.json_type(column, f'$."{field}"').in_(("integer", "real"))
    return case((is_number, value.as_string().cast(Float)), else_=None)


def json_text(column, field: str) -> ColumnElement:
    """The field's value as text (numbers too), NULL when missing."""
    return column[field].as_string()


def json_version(column, field: str, dialect: str) -> ColumnElement:
    """A sort key that orders version-like text values as versions ("3.9"
    before "3.12"); NULL for anything else."""
    text = column[field].as_string()
    if dialect == "postgresql":
        prefix = func.substring(text, VERSION_PATTERN)
        return func.string_to_array(prefix, ".").cast(ARRAY(Integer))
    return getattr(func, VERSION_KEY_FUNCTION)(text)

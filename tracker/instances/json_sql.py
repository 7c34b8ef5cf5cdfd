"""SQL expressions over JSON columns that behave alike on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Float, case, func
from sqlalchemy.sql.elements import ColumnElement


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

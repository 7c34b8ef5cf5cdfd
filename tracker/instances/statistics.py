"""The statistics page's numbers, read from totals kept as instances change
(``tracker.instances.tallies``) and a few grouped queries over indexed columns."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import String, func, select
from sqlalchemy.orm import Session

from tracker.db_types import utcnow
from tracker.instances.charts import (
    FieldSettings,
    country_table,
    cumulative_per_month,
    series_from_totals,
)
from tracker.instances.models import DailyTotal, Instance
from tracker.instances.tallies import build_charts, chart_totals, unbuilt, value_charts

HISTORY_DAYS = 30


def _countries(session: Session) -> list[dict]:
    rows = session.execute(
        select(Instance.country_code, Instance.country_name, func.count(Instance.id))
        .where(Instance.enabled.is_(True))
        .group_by(Instance.country_code, Instance.country_name)
    ).all()
    return country_table(rows)


def _points(session: Session) -> list[dict]:
    """One point per distinct location, with how many instances are there,
    grouped by the database."""
    return [
        {"lat": lat, "lng": lng, "city": city, "count": count}
        # Core rows: no ORM bookkeeping for thousands of plain tuples.
        for lat, lng, city, count in session.connection().execute(
            select(
                Instance.latitude,
                Instance.longitude,
                func.min(Instance.city),
                func.count(),
            )
            .where(Instance.enabled.is_(True), Instance.latitude.is_not(None))
            .group_by(Instance.latitude, Instance.longitude)
        )
    ]


def _history(session: Session, setting: FieldSettings, days: int) -> dict[str, Any]:
    """A field over time: per day, each instance's value that day (its last
    crawl), folded across instances by the chart aggregation (count: instances
    reporting the field), from the totals kept as the values are written."""
    since = (utcnow() - timedelta(days=days)).date()
    how = setting.chart_aggregation
    labels, values = [], []
    for day, instances, numbers, total in session.execute(
        select(
            DailyTotal.day, DailyTotal.instances, DailyTotal.numbers, DailyTotal.total
        )
        .where(
            DailyTotal.field == setting.name,
            DailyTotal.day >= since,
            DailyTotal.instances > 0,
        )
        .order_by(DailyTotal.day)
    ):
        if how == "count":
            value = instances
        elif not numbers:
            continue
        else:
            value = total if how == "sum" else total / numbers
        labels.append(day.isoformat())
        values.append(round(float(value), 4))
    return {
        "field": setting.name,
        "label": setting.label,
        "type": "line",
        "aggregation": how,
        "labels": labels,
        "values": values,
    }


def _value_charts(
    session: Session, fields: dict[str, FieldSettings]
) -> dict[str, dict[str, Any]]:
    """The charts of current values by field, from the totals kept as instances
    change; a chart whose setting is new is built from every instance first."""
    charts = value_charts(fields)
    missing = unbuilt(session, charts)
    if missing:
        build_charts(session, missing, charts)
        session.commit()
    return {
        chart.setting.name: series_from_totals(
            chart.setting, chart_totals(session, chart)
        )
        for chart in charts
    }


def _registrations(session: Session) -> dict[str, Any]:
    """Cumulative registrations per month, counted by the database."""
    if session.get_bind().dialect.name == "postgresql":
        utc = func.timezone("UTC", Instance.registered)
        month = func.to_char(utc, "YYYY-MM", type_=String)
    else:  # stored as UTC text, "YYYY-MM-DD HH:MM:SS"
        month = func.substr(Instance.registered, 1, 7, type_=String)
    per_month = session.execute(select(month, func.count()).group_by(month)).all()
    return cumulative_per_month(per_month)


def gather(
    session: Session, fields: dict[str, FieldSettings], history_days: int = HISTORY_DAYS
) -> dict[str, Any]:
    """Everything the statistics page shows, as plain data."""
    current = _value_charts(session, fields)
    charts = [
        _history(session, setting, history_days)
        if setting.chart_type == "line"
        else current[setting.name]
        for setting in fields.values()
        if setting.chart
    ]
    return {
        "countries": _countries(session),
        "points": _points(session),
        "charts": charts,
        "registrations": _registrations(session),
    }

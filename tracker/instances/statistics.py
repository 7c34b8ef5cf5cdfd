"""The statistics page's numbers, gathered with a few grouped queries."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tracker.db_types import utcnow
from tracker.instances.charts import (
    FieldSettings,
    Row,
    chart_series,
    country_table,
    registrations_series,
)
from tracker.instances.models import DailyValue, Instance

HISTORY_DAYS = 30


def _countries(session: Session) -> list[dict]:
    rows = session.execute(
        select(Instance.country_code, Instance.country_name, func.count(Instance.id))
        .where(Instance.enabled.is_(True))
        .group_by(Instance.country_code, Instance.country_name)
    ).all()
    return country_table(rows)


def _points(session: Session) -> list[dict]:
    """One point per distinct location, with how many instances are there."""
    grouped: dict[tuple[float, float], dict] = {}
    for lat, lng, city in session.execute(
        select(Instance.latitude, Instance.longitude, Instance.city).where(
            Instance.enabled.is_(True), Instance.latitude.is_not(None)
        )
    ):
        point = grouped.setdefault(
            (lat, lng), {"lat": lat, "lng": lng, "city": city, "count": 0}
        )
        point["count"] += 1
    return list(grouped.values())


def _history(session: Session, setting: FieldSettings, days: int) -> dict[str, Any]:
    """A field over time: per day, each instance's value that day (its last
    crawl), folded across instances by the chart aggregation (count: instances
    reporting the field)."""
    since = (utcnow() - timedelta(days=days)).date()
    fold = {"count": func.count, "sum": func.sum, "avg": func.avg}[
        setting.chart_aggregation
    ]
    folded = fold() if setting.chart_aggregation == "count" else fold(DailyValue.value)
    rows = session.execute(
        select(DailyValue.day, folded)
        .where(DailyValue.field == setting.name, DailyValue.day >= since)
        .group_by(DailyValue.day)
        .order_by(DailyValue.day)
    ).all()
    return {
        "field": setting.name,
        "label": setting.label,
        "type": "line",
        "aggregation": setting.chart_aggregation,
        "labels": [day.isoformat() for day, value in rows if value is not None],
        "values": [round(float(value), 4) for _, value in rows if value is not None],
    }


def _rows(session: Session) -> list[Row]:
    """Crawled values and country of every enabled instance."""
    statement = select(Instance.crawled, Instance.country_name).where(
        Instance.enabled.is_(True)
    )
    return [
        Row(crawled or {}, country) for crawled, country in session.execute(statement)
    ]


def gather(
    session: Session, fields: dict[str, FieldSettings], history_days: int = HISTORY_DAYS
) -> dict[str, Any]:
    """Everything the statistics page shows, as plain data."""
    charted = [f for f in fields.values() if f.chart]
    rows = _rows(session) if any(f.chart_type != "line" for f in charted) else []
    charts = []
    for setting in charted:
        if setting.chart_type == "line":
            charts.append(_history(session, setting, history_days))
        else:
            charts.append(chart_series(rows, setting, fields))
    registered = session.scalars(select(Instance.registered)).all()
    return {
        "countries": _countries(session),
        "points": _points(session),
        "charts": charts,
        "registrations": registrations_series(registered),
    }

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
    history_series,
    registrations_series,
)
from tracker.instances.models import CrawlResult, Instance

HISTORY_DAYS = 30


def _countries(session: Session) -> list[dict]:
    rows = session.execute(
        select(Instance.country_code, Instance.country_name, func.count(Instance.id))
        .where(Instance.enabled.is_(True))
        .group_by(Instance.country_code, Instance.country_name)
    ).all()
    return country_table(rows)


def _points(session: Session) -> list[dict]:
    rows = session.execute(
        select(
            Instance.latitude,
            Instance.longitude,
            func.min(Instance.city),
            func.count(Instance.id),
        )
        .where(Instance.enabled.is_(True), Instance.latitude.is_not(None))
        .group_by(Instance.latitude, Instance.longitude)
    ).all()
    return [
        {"lat": lat, "lng": lng, "city": city, "count": count}
        for lat, lng, city, count in rows
    ]


def _history(session: Session, setting: FieldSettings, days: int) -> dict[str, Any]:
    since = utcnow() - timedelta(days=days)
    samples = session.execute(
        select(
            CrawlResult.crawled_at,
            CrawlResult.instance_id,
            CrawlResult.data[setting.name],
        )
        .where(CrawlResult.crawled_at >= since)
        .order_by(CrawlResult.crawled_at)
    )
    return history_series(
        ((moment.date(), instance_id, value) for moment, instance_id, value in samples),
        setting,
    )


def gather(
    session: Session, fields: dict[str, FieldSettings], history_days: int = HISTORY_DAYS
) -> dict[str, Any]:
    """Everything the statistics page shows, as plain data."""
    charted = [f for f in fields.values() if f.chart]
    rows = (
        [
            Row(crawled or {}, country)
            for crawled, country in session.execute(
                select(Instance.crawled, Instance.country_name).where(
                    Instance.enabled.is_(True)
                )
            )
        ]
        if charted
        else []
    )
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

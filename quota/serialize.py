"""Quotas, clients and history as JSON-ready dictionaries (plain functions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from quota.admin import commitments
from quota.controller import assumed_ceiling, outstanding_by_client
from quota.forecast import Forecast, client_forecast, quota_forecast
from quota.models import ControllerQuota, QuotaClient, QuotaHistory


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _forecast(forecast: Forecast) -> dict[str, Any]:
    return {
        "left": forecast.left,
        "rate_per_hour": round(forecast.rate, 3),
        "runs_out": _when(forecast.runs_out),
        "outlook": forecast.outlook,
    }


def client_summary(
    client: QuotaClient,
    may_create: int,
    approved: int,
    now: datetime,
    max_skew: float,
) -> dict[str, Any]:
    quota = client.quota
    skew = client.clock_skew
    return {
        "name": client.name,
        "endpoint": client.endpoint,
        "active": client.active,
        "weight": client.weight,
        "max_ceiling": client.max_ceiling,
        "count": client.count,
        "ceiling": client.acknowledged,
        "pending": client.pending,
        "approved_unused": approved,
        "may_create": may_create,
        "last_contact": _when(client.last_contact),
        "last_error": client.last_error,
        "reinstalled": _when(client.reinstalled),
        "earlier_installs_created": client.earlier,
        "clock_skew_seconds": None if skew is None else round(skew, 1),
        "clock_off": skew is not None and abs(skew) > max_skew,
        "forecast": _forecast(
            client_forecast(client, may_create, now, quota.window_expires)
        ),
    }


def quota_summary(session: Session, quota: ControllerQuota) -> dict[str, Any]:
    numbers = commitments(session, quota)
    return {
        "record_kind": quota.record_kind,
        "target": quota.target,
        "window_start": _when(quota.window_start),
        "window_expires": _when(quota.window_expires),
        "active": quota.active,
        "clients": len(quota.clients),
        **numbers,
        "free": max(0, quota.target - numbers["committed"]),
    }


def quota_detail(
    session: Session, quota: ControllerQuota, now: datetime, max_skew: float
) -> dict[str, Any]:
    outstanding = outstanding_by_client(session, quota)
    return {
        **quota_summary(session, quota),
        "forecast": _forecast(quota_forecast(quota, now)),
        "clients": [
            client_summary(
                c,
                assumed_ceiling(session, c, outstanding.get(c.id, 0)),
                outstanding.get(c.id, 0),
                now,
                max_skew,
            )
            for c in quota.clients
        ],
    }


def history_line(event: QuotaHistory) -> dict[str, Any]:
    return {
        "at": _when(event.at),
        "client": event.client_name or None,
        "event": event.event,
        "count": event.count,
        "ceiling": event.ceiling,
        "detail": event.detail,
        "by": event.actor,
    }

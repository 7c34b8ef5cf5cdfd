"""When a quota and each of its clients run out, at the rates already kept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from quota.models import ControllerQuota, QuotaClient

# Below this many records an hour nothing is forecast: it would be noise.
SLOWEST_RATE = 0.01


@dataclass(frozen=True)
class Forecast:
    left: int
    rate: float  # records per hour
    runs_out: datetime | None  # None: not at this rate, or not in the window

    @property
    def within_window(self) -> bool:
        return self.runs_out is not None


def _forecast(left: int, rate: float, now: datetime, ends: datetime) -> Forecast:
    left = max(0, left)
    if left == 0:
        return Forecast(0, rate, now)
    if rate < SLOWEST_RATE:
        return Forecast(left, rate, None)
    when = now + timedelta(hours=left / rate)
    return Forecast(left, rate, when if when < ends else None)


def quota_forecast(quota: ControllerQuota, now: datetime) -> Forecast:
    """When the whole target is reached at the clients' summed rates."""
    created = quota.retired + sum(c.count for c in quota.clients)
    rate = sum(c.rate for c in quota.clients if c.active)
    return _forecast(quota.target - created, rate, now, quota.window_expires)


def client_forecast(
    client: QuotaClient, ceiling: int, now: datetime, ends: datetime
) -> Forecast:
    """When the client reaches the ceiling it may have, at its own rate."""
    return _forecast(ceiling - client.count, client.rate, now, ends)

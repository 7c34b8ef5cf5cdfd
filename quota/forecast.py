"""When a quota and each of its clients run out, at the rates already kept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from quota.models import ControllerQuota, QuotaClient

# Below this many records an hour nothing is forecast: it would be noise.
SLOWEST_RATE = 0.01

# What a forecast says, besides a time.
RUNS_OUT = "runs-out"  # at this rate, at ``runs_out``, within the window
NO_ROOM = "no-room"  # nothing left: the target reached, the ceiling used up
INACTIVE = "inactive"  # a client switched off gets no more headroom
NOT_IN_WINDOW = "not-in-window"  # too slow to run out before the window closes
OUTLOOKS = (RUNS_OUT, NO_ROOM, INACTIVE, NOT_IN_WINDOW)


@dataclass(frozen=True)
class Forecast:
    left: int
    rate: float  # records per hour
    runs_out: datetime | None  # only for RUNS_OUT
    outlook: str = RUNS_OUT

    @property
    def within_window(self) -> bool:
        return self.runs_out is not None


def _forecast(left: int, rate: float, now: datetime, ends: datetime) -> Forecast:
    left = max(0, left)
    if left == 0:
        return Forecast(0, rate, None, NO_ROOM)
    if rate < SLOWEST_RATE:
        return Forecast(left, rate, None, NOT_IN_WINDOW)
    when = now + timedelta(hours=left / rate)
    if when >= ends:
        return Forecast(left, rate, None, NOT_IN_WINDOW)
    return Forecast(left, rate, when)


def quota_forecast(quota: ControllerQuota, now: datetime) -> Forecast:
    """When the whole target is reached at the clients' summed rates."""
    created = quota.retired + sum(c.count for c in quota.clients)
    rate = sum(c.rate for c in quota.clients if c.active)
    return _forecast(quota.target - created, rate, now, quota.window_expires)


def client_forecast(
    client: QuotaClient, ceiling: int, now: datetime, ends: datetime
) -> Forecast:
    """When the client reaches the ceiling it may have, at its own rate; an
    inactive client is forecast nothing (it gets no more headroom, and what it
    still holds is taken back as it confirms a lower ceiling)."""
    if not client.active:
        return Forecast(max(0, ceiling - client.count), 0.0, None, INACTIVE)
    return _forecast(ceiling - client.count, client.rate, now, ends)

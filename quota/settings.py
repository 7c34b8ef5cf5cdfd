"""Settings the quota domain adds to settings.cfg."""

from __future__ import annotations

from typing import Any

from tracker.settings import Invalid, Setting, integer, number


def reserve(value: Any) -> int | str:
    """A count of records (10) or a percentage of the target ("5%")."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            percent = float(value[:-1])
        except ValueError:
            percent = -1.0
        if 0 <= percent <= 100:
            return value
    raise Invalid('a whole number of records >= 0 or a percentage such as "5%"')


SETTINGS = (
    Setting("QUOTA_PULL_INTERVAL", 900, integer(10, 7 * 86400)),
    Setting("QUOTA_CLIENT_TIMEOUT", 10.0, number(0.5, 300)),
    Setting("QUOTA_PULL_CONCURRENCY", 100, integer(1, 2000)),
    Setting("QUOTA_OVERRIDE_HOURS", 24, integer(1, 24 * 90)),
    Setting("QUOTA_OVERRIDE_RESERVE", "5%", reserve),
    Setting("QUOTA_FAIR_FLOOR", 5, integer(0, 1_000_000)),
    Setting("QUOTA_LEASE_HOURS", 72, integer(1, 24 * 365)),
    Setting("QUOTA_MAX_CLOCK_SKEW", 6 * 3600, integer(0, 30 * 86400)),
    Setting("QUOTA_WARNING_PERCENT", 90, integer(1, 100)),
    Setting("QUOTA_UNREACHABLE_DAYS", 3, integer(1, 365)),
)

"""Availability of an instance over a period, from its contact and crawl history.

Each contact (a successful crawl, a heartbeat, a client's PATCH...) covers the
time until the next one is due plus its grace; for a server judged by its
crawls (no schedule), a failed crawl ends that cover early. Availability is
the share of the period covered, from the instance's registration on.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tracker.instances.models import HEALTH_DOWN, HEALTH_UP, ContactEvent, CrawlResult
from tracker.instances.states import Schedule

WINDOWS = {"1d": 1, "7d": 7, "30d": 30}
BAR_DAYS = 30

Interval = tuple[datetime, datetime]


def covered(
    contacts: Sequence[datetime],
    failures: Sequence[datetime],
    allowed: timedelta,
    failures_end_cover: bool,
) -> list[Interval]:
    """The merged, sorted intervals during which the instance was available."""
    failures = sorted(failures)
    intervals: list[Interval] = []
    for contact in sorted(contacts):
        end = contact + allowed
        if failures_end_cover:
            after = bisect.bisect_right(failures, contact)
            if after < len(failures):
                end = min(end, failures[after])
        if intervals and contact <= intervals[-1][1]:
            intervals[-1] = (intervals[-1][0], max(intervals[-1][1], end))
        else:
            intervals.append((contact, end))
    return intervals


def availability(
    intervals: Sequence[Interval], start: datetime, end: datetime
) -> float | None:
    """The share of [start, end) the intervals cover; None for an empty period."""
    if end <= start:
        return None
    total = timedelta()
    for begin, finish in intervals:
        overlap = min(finish, end) - max(begin, start)
        if overlap > timedelta():
            total += overlap
    return total / (end - start)


@dataclass(frozen=True)
class Uptime:
    windows: dict[str, float | None]  # "1d", "7d", "30d"
    days: list[tuple[datetime, float | None]]  # the last BAR_DAYS days, oldest first


def instance_uptime(
    session: Session,
    instance_id: int,
    registered: datetime,
    schedule: Schedule,
    now: datetime,
) -> Uptime:
    """Availability over 1, 7 and 30 days, and day by day for the bar."""
    since = now - timedelta(days=max(WINDOWS.values())) - schedule.allowed
    crawls = session.execute(
        select(CrawlResult.crawled_at, CrawlResult.health).where(
            CrawlResult.instance_id == instance_id, CrawlResult.crawled_at >= since
        )
    ).all()
    contacts = [at for at, health in crawls if health == HEALTH_UP]
    contacts += session.scalars(
        select(ContactEvent.at).where(
            ContactEvent.instance_id == instance_id, ContactEvent.at >= since
        )
    )
    failures = [at for at, health in crawls if health == HEALTH_DOWN]
    intervals = covered(contacts, failures, schedule.allowed, not schedule.by_design)

    def share(start: datetime, end: datetime) -> float | None:
        return availability(intervals, max(start, registered), min(end, now))

    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    days = [today - timedelta(days=n) for n in range(BAR_DAYS - 1, -1, -1)]
    return Uptime(
        windows={
            name: share(now - timedelta(days=n), now) for name, n in WINDOWS.items()
        },
        days=[(day, share(day, day + timedelta(days=1))) for day in days],
    )

"""Crawl runs: which instances, in what chunks, and how progress is reported.

Plain functions over a session. ``commit`` is handed in by the task or command
that owns the transaction, so progress becomes visible while a run goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tracker.batch import operations
from tracker.db_types import utcnow
from tracker.instances.crawlability import crawlable
from tracker.instances.crawler import CrawlOutcome, CrawlSettings, Target, crawl
from tracker.instances.geo import Locator
from tracker.instances.models import HEALTH_DOWN, CrawlResult, DailyValue, Instance
from tracker.instances.recording import Counts, record_outcomes

CRAWL_OPERATION = "crawl"
SCOPE_ALL = "all"
FLUSH_EVERY = 250
FLUSH_SECONDS = 1.0


def instance_scope(instance_id: int) -> str:
    return f"instance:{instance_id}"


def crawlable_ids(
    session: Session, require_approval: bool, instance_ids: Sequence[int] | None = None
) -> list[int]:
    """Ids of the instances that may be crawled, in id order."""
    statement = select(Instance.id).where(crawlable(require_approval))
    if instance_ids is not None:
        statement = statement.where(Instance.id.in_(instance_ids))
    return list(session.scalars(statement.order_by(Instance.id)))


def chunks(ids: Sequence[int], size: int) -> list[list[int]]:
    return [list(ids[start : start + size]) for start in range(0, len(ids), size)]


def crawl_chunk(
    session: Session,
    operation_id: int | None,
    instance_ids: Sequence[int],
    settings: CrawlSettings,
    locator: Locator,
    require_approval: bool,
    commit: Callable[[], None],
    on_progress: Callable[[Counts], None] | None = None,
    daily_fields: Mapping[str, str | None] | None = None,
) -> Counts:
    """Crawl some instances of one run, committing progress as outcomes arrive.

    Instances no longer crawlable count as skipped. Stops early, keeping what it
    stored, when the operation stops running (say, housekeeping failed it).
    """
    eligible = crawlable_ids(session, require_approval, instance_ids)
    # Likely-slow instances first (down last time, then the slowest): their
    # timeouts overlap the rest of the run instead of trailing it.
    targets = [
        Target(row.id, row.url, send_headers=row.approved)
        for row in session.execute(
            select(Instance.id, Instance.url, Instance.approved)
            .where(Instance.id.in_(eligible))
            .order_by(
                (Instance.health == HEALTH_DOWN).desc(),
                Instance.last_duration_ms.desc().nulls_last(),
                Instance.id,
            )
        )
    ]
    totals = Counts(skipped=len(instance_ids) - len(targets))
    if operation_id is not None and totals.skipped:
        operations.add_progress(session, operation_id, skipped=totals.skipped)
    commit()

    pending: list[CrawlOutcome] = []
    last_flush = time.monotonic()

    def flush() -> bool:
        nonlocal last_flush
        counts = record_outcomes(
            session, pending, settings.endpoints, locator, operation_id, daily_fields
        )
        pending.clear()
        running = True
        if operation_id is not None:
            running = operations.add_progress(
                session,
                operation_id,
                done=counts.up,
                failed=counts.down,
                skipped=counts.skipped,
            )
        commit()
        totals.add(counts)
        last_flush = time.monotonic()
        if on_progress is not None:
            on_progress(counts)
        return running

    for outcome in crawl(targets, settings):
        if outcome is not None:
            pending.append(outcome)
        due = time.monotonic() - last_flush >= FLUSH_SECONDS
        if (len(pending) >= FLUSH_EVERY or due) and not flush():
            return totals
    flush()
    return totals


def prune_history(session: Session, keep_days: int) -> int:
    """Delete crawl results and daily values older than ``keep_days``; return
    how many crawl results went."""
    cutoff = utcnow() - timedelta(days=keep_days)
    session.execute(delete(DailyValue).where(DailyValue.day < cutoff.date()))
    result = session.execute(delete(CrawlResult).where(CrawlResult.crawled_at < cutoff))
    return result.rowcount or 0

"""Crawl runs: which instances, in what chunks, and how progress is reported.

Plain functions over a session. ``commit`` is handed in by the task or command
that owns the transaction, so progress becomes visible while a run goes on.

Each instance of a run is a batch item: a chunk claims the instances it
crawled and settles them (up: done, down: failed, skipped) in the transaction
that records them, so a redelivered chunk neither crawls an instance of its run
again nor counts it twice.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta

from flask import url_for
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tracker.batch import operations
from tracker.batch.items import ItemDescription
from tracker.batch.models import (
    ITEM_DONE,
    ITEM_FAILED,
    ITEM_SKIPPED,
    BatchOperation,
)
from tracker.db_types import utcnow
from tracker.instances.crawlability import AWAITS_APPROVAL, DISABLED, crawlable
from tracker.instances.crawler import CrawlOutcome, CrawlSettings, Target, crawl
from tracker.instances.geo import Locator
from tracker.instances.models import (
    HEALTH_DOWN,
    HEALTH_UP,
    CrawlResult,
    DailyValue,
    Instance,
)
from tracker.instances.recording import (
    UNLIMITED,
    Counts,
    HistoryLimit,
    record_outcomes,
)
from tracker.instances.tallies import Chart, prune_daily_totals

CRAWL_OPERATION = "crawl"
SCOPE_ALL = "all"
FLUSH_EVERY = 250
FLUSH_SECONDS = 1.0
DELETED = "deleted"
# Why an instance of a run was not crawled although the network policy had no say.
NOT_CRAWLABLE = (DISABLED, AWAITS_APPROVAL, DELETED)


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
    history_limit: HistoryLimit = UNLIMITED,
    charts: Sequence[Chart] | None = None,
) -> Counts:
    """Crawl some instances of one run, committing progress as outcomes arrive.

    Instances this run already attempted are left out; instances no longer
    crawlable count as skipped. Stops early, keeping what it stored, when the
    operation stops running (say, housekeeping closed it).
    """
    if operation_id is not None:
        instance_ids = operations.pending_items(session, operation_id, instance_ids)
        if not instance_ids:
            return Counts()  # a redelivery of a chunk already done
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
    crawled = {target.instance_id for target in targets}
    refused = [i for i in instance_ids if i not in crawled]
    totals = Counts(skipped=len(refused))
    if operation_id is not None and refused:
        claimed = operations.claim_items(session, operation_id, refused)
        reasons = refusals(session, claimed, require_approval)
        operations.settle_items(
            session,
            operation_id,
            {i: (ITEM_SKIPPED, reasons[i]) for i in claimed},
        )
        totals.skipped = len(claimed)
    commit()

    pending: list[CrawlOutcome] = []
    last_flush = time.monotonic()

    def flush() -> bool:
        nonlocal last_flush
        batch = list(pending)
        pending.clear()
        if operation_id is not None:
            claimed = operations.claim_items(
                session, operation_id, [o.instance_id for o in batch]
            )
            batch = [o for o in batch if o.instance_id in claimed]
        counts = record_outcomes(
            session,
            batch,
            settings.endpoints,
            locator,
            operation_id,
            daily_fields,
            history_limit,
            charts,
        )
        running = True
        if operation_id is not None:
            running = operations.settle_items(
                session,
                operation_id,
                settled_outcomes(session, operation_id, batch, counts),
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


def refusals(
    session: Session, instance_ids: Sequence[int] | set[int], require_approval: bool
) -> dict[int, str]:
    """Why each of ``instance_ids`` was not crawled: disabled, awaits approval
    or deleted."""
    reasons = dict.fromkeys(instance_ids, DELETED)
    for row in session.execute(
        select(Instance.id, Instance.enabled).where(Instance.id.in_(list(instance_ids)))
    ):
        reasons[row.id] = DISABLED if not row.enabled else AWAITS_APPROVAL
    return reasons


def item_outcome(outcome: CrawlOutcome) -> tuple[str, str]:
    """A crawl outcome as a batch item's (outcome, error)."""
    if outcome.skipped:
        return ITEM_SKIPPED, outcome.error
    if outcome.health == HEALTH_UP:
        return ITEM_DONE, ""
    return ITEM_FAILED, outcome.error


def settled_outcomes(
    session: Session,
    operation_id: int,
    outcomes: Sequence[CrawlOutcome],
    counts: Counts,
) -> dict[int, tuple[str, str]]:
    """Each recorded outcome as its item's (outcome, error).

    Recording may turn an outcome into its instance's error (down) or find the
    instance deleted (skipped); then the counts differ from the outcomes, and
    the history rows the run wrote say what was stored.
    """
    settled = {o.instance_id: item_outcome(o) for o in outcomes}
    expected = Counter(outcome for outcome, _ in settled.values())
    if (expected[ITEM_DONE], expected[ITEM_FAILED], expected[ITEM_SKIPPED]) == (
        counts.up,
        counts.down,
        counts.skipped,
    ):
        return settled
    stored = {
        row.instance_id: row
        for row in session.execute(
            select(
                CrawlResult.instance_id, CrawlResult.health, CrawlResult.error
            ).where(
                CrawlResult.batch_operation_id == operation_id,
                CrawlResult.instance_id.in_(list(settled)),
            )
        )
    }
    for outcome in outcomes:
        row = stored.get(outcome.instance_id)
        if row is None:
            settled[outcome.instance_id] = (
                ITEM_SKIPPED,
                outcome.error if outcome.skipped else DELETED,
            )
        elif row.health == HEALTH_UP:
            settled[outcome.instance_id] = (ITEM_DONE, "")
        else:
            settled[outcome.instance_id] = (ITEM_FAILED, row.error)
    return settled


def run_notice(
    session: Session, operation: BatchOperation, endpoints_configured: bool
) -> str:
    """Why a finished run fetched nothing, or "" if it fetched something."""
    notes = []
    if not endpoints_configured:
        notes.append(
            "no endpoints configured (CRAWLING_ENDPOINTS is empty): instances were "
            "only checked to answer, nothing was fetched"
        )
    if operation.total and not operation.done:
        errors = operations.item_errors(session, operation.id)
        refused = {e: n for e, n in errors.items() if e not in NOT_CRAWLABLE}
        if not operation.failed and sum(refused.values()) == operation.skipped:
            example = max(refused, key=refused.get)
            notes.append(
                "nothing was fetched: the network policy refused every address "
                f"(CRAWL_ALLOW_NETWORKS, CRAWL_DENY_NETWORKS), e.g. {example}"
            )
        elif endpoints_configured:
            policy = operation.skipped - sum(
                errors[e] for e in NOT_CRAWLABLE if e in errors
            )
            notes.append(
                f"nothing was fetched: {operation.failed} down, {policy} refused "
                f"by the network policy, {operation.skipped - policy} no longer "
                "crawlable"
            )
    return "; ".join(notes)


def describe_instances(
    session: Session, instance_ids: Sequence[int]
) -> dict[int, ItemDescription]:
    """The items of a crawl run as instances: url, number and page (called by
    the background-job pages and API, inside a request; never the uuid, which
    viewers read these)."""
    return {
        row.id: ItemDescription(
            row.url,
            url_for("instances.detail", number=row.id),
            {"instance": {"id": row.id, "url": row.url}},
        )
        for row in session.execute(
            select(Instance.id, Instance.url).where(Instance.id.in_(list(instance_ids)))
        )
    }


def prune_history(session: Session, keep_days: int) -> int:
    """Delete crawl results and daily values older than ``keep_days``; return
    how many crawl results went."""
    cutoff = utcnow() - timedelta(days=keep_days)
    session.execute(delete(DailyValue).where(DailyValue.day < cutoff.date()))
    prune_daily_totals(session, cutoff.date())
    result = session.execute(delete(CrawlResult).where(CrawlResult.crawled_at < cutoff))
    return result.rowcount or 0

"""The registry's Prometheus metrics: instances by health, crawl runs."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tracker.batch.models import STATUS_FINISHED, BatchOperation
from tracker.instances.crawling import CRAWL_OPERATION
from tracker.instances.models import HEALTHS, Instance


def registry_metrics(session: Session) -> Iterable[Metric]:
    """Instances by health and enabled; crawl runs by result; the last run."""
    instances = GaugeMetricFamily(
        "tracker_instances",
        "Registered instances, by health and whether they are enabled.",
        labels=("health", "enabled"),
    )
    counts = dict.fromkeys(((h, e) for h in HEALTHS for e in ("true", "false")), 0)
    rows = session.execute(
        select(Instance.health, Instance.enabled, func.count()).group_by(
            Instance.health, Instance.enabled
        )
    )
    for health, enabled, count in rows:
        counts[(health, "true" if enabled else "false")] = count
    for labels, count in counts.items():
        instances.add_metric(labels, count)
    yield instances

    runs = CounterMetricFamily(
        "tracker_crawl_runs",
        "Crawl runs finished and kept, by result.",
        labels=("result",),
    )
    finished = (
        BatchOperation.operation_type == CRAWL_OPERATION,
        BatchOperation.status == STATUS_FINISHED,
    )
    for result, count in session.execute(
        select(BatchOperation.result, func.count())
        .where(*finished)
        .group_by(BatchOperation.result)
    ):
        runs.add_metric((result,), count)
    yield runs

    last = session.execute(
        select(BatchOperation.started, BatchOperation.finished)
        .where(*finished, BatchOperation.started.is_not(None))
        .order_by(BatchOperation.finished.desc())
        .limit(1)
    ).first()
    duration = GaugeMetricFamily(
        "tracker_crawl_last_run_duration_seconds",
        "How long the last finished crawl run took.",
    )
    finished_at = GaugeMetricFamily(
        "tracker_crawl_last_run_finished_timestamp_seconds",
        "When the last crawl run finished (Unix time).",
    )
    if last is not None:
        duration.add_metric((), (last.finished - last.started).total_seconds())
        finished_at.add_metric((), last.finished.timestamp())
    yield duration
    yield finished_at

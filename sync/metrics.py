"""The sync domain's Prometheus metrics: how far each producer lags."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import select
from sqlalchemy.orm import Session

from sync.models import SyncProducer
from tracker.db_types import utcnow


def sync_metrics(session: Session) -> Iterable[Metric]:
    """Per producer: transactions received but not applied, and contact age."""
    behind = GaugeMetricFamily(
        "tracker_sync_lag_transactions",
        "Transactions a producer sent that are not applied yet (held, parked"
        " or waiting).",
        labels=("producer",),
    )
    silent = GaugeMetricFamily(
        "tracker_sync_last_contact_age_seconds",
        "Seconds since a producer last delivered anything.",
        labels=("producer",),
    )
    now = utcnow()
    for producer in session.scalars(select(SyncProducer).order_by(SyncProducer.id)):
        labels = (producer.producer_id,)
        lag = max(0, producer.highest_received - producer.applied_through)
        behind.add_metric(labels, lag)
        if producer.last_contact is not None:
            silent.add_metric(labels, (now - producer.last_contact).total_seconds())
    yield behind
    yield silent

"""The quota domain's Prometheus metrics: use of each kind's overall target."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from quota.models import ControllerQuota, QuotaClient


def quota_metrics(session: Session) -> Iterable[Metric]:
    """Per record kind: the target, the records counted and the ceilings held."""
    families = {
        name: GaugeMetricFamily(f"tracker_quota_{name}", text, labels=("kind",))
        for name, text in (
            ("target", "The overall target of a record kind."),
            ("used", "Records the clients last reported, summed."),
            ("ceilings", "Ceilings the clients confirmed, summed."),
        )
    }
    rows = session.execute(
        select(
            ControllerQuota.record_kind,
            ControllerQuota.target,
            func.coalesce(func.sum(QuotaClient.count), 0),
            func.coalesce(func.sum(QuotaClient.acknowledged), 0),
        )
        .outerjoin(QuotaClient, QuotaClient.quota_id == ControllerQuota.id)
        .where(ControllerQuota.active.is_(True))
        .group_by(
            ControllerQuota.id, ControllerQuota.record_kind, ControllerQuota.target
        )
    )
    for kind, target, used, ceilings in rows:
        families["target"].add_metric((kind,), target)
        families["used"].add_metric((kind,), used)
        families["ceilings"].add_metric((kind,), ceilings)
    yield from families.values()

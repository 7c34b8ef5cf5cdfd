"""What allocation tells through notifications: pools of the current periods
near their allocation (ALLOCATION_NEAR_PERCENT) and over it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from allocation.ledger import LedgerFilter, ledger
from allocation.models import AllocationPeriod
from allocation.units import humanise
from tracker.notifications.events import AlertReport, Event

PREFIX = "allocation:"


def pool_alerts(session: Session, config: Mapping, now: datetime) -> AlertReport:
    today = now.date()
    current = list(
        session.scalars(
            select(AllocationPeriod.id).where(
                AllocationPeriod.start <= today, AllocationPeriod.end > today
            )
        )
    )
    report = AlertReport()
    if not current:
        return report
    near = config["ALLOCATION_NEAR_PERCENT"]
    for line in ledger(session, LedgerFilter(period_ids=current)):
        if line.exceeded:
            kind, verdict = "allocation_over", "over its allocation"
        elif line.is_near(near):
            kind, verdict = "allocation_near", f"past {near:g} % of its allocation"
        else:
            continue
        subject = f"{line.project} {line.resource_pool} ({line.period})"
        report.active.append(
            Event(
                kind=kind,
                key=f"{PREFIX}{line.pool_id}:{kind}",
                title=f"{subject} is {verdict}",
                body=(
                    f"Used {humanise(line.used, line.units)} of "
                    f"{humanise(line.allocated, line.units)}."
                ),
                subject=subject,
            )
        )
    return report

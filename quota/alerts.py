"""What quota tells through notifications: a quota at QUOTA_WARNING_PERCENT of
its target, a client unreachable for QUOTA_UNREACHABLE_DAYS, and overrides
approved."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from quota.admin import commitments
from quota.models import ControllerQuota, QuotaApproval, QuotaClient
from tracker.notifications.events import AlertReport, Event

PREFIX = "quota:"
APPROVALS_LOOK_BACK = timedelta(days=1)


def quota_alerts(session: Session, config: Mapping, now: datetime) -> AlertReport:
    warning = config["QUOTA_WARNING_PERCENT"]
    silent = timedelta(days=config["QUOTA_UNREACHABLE_DAYS"])
    report = AlertReport()
    for quota in session.scalars(
        select(ControllerQuota).where(ControllerQuota.active.is_(True))
    ):
        created = commitments(session, quota)["created"]
        if quota.target and 100 * created >= warning * quota.target:
            report.active.append(
                Event(
                    kind="quota_warning",
                    key=f"{PREFIX}{quota.id}:warning",
                    title=(
                        f"The {quota.record_kind} quota is at "
                        f"{100 * created / quota.target:.0f} % of its target"
                    ),
                    body=f"{created} of {quota.target} created.",
                    subject=f"the {quota.record_kind} quota",
                )
            )
        for client in quota.clients:
            last = client.last_contact or quota.created
            if client.active and now - last > silent:
                report.active.append(
                    Event(
                        kind="quota_client_unreachable",
                        key=f"{PREFIX}{quota.id}:client:{client.id}:unreachable",
                        title=(
                            f"Quota client {client.name} ({quota.record_kind}) "
                            f"has not answered for {(now - last).days} days"
                        ),
                        body=client.last_error or "",
                        subject=f"quota client {client.name}",
                    )
                )
    return report


def approval_events(
    session: Session, config: Mapping, now: datetime
) -> Iterator[Event]:
    for approval, client in session.execute(
        select(QuotaApproval, QuotaClient)
        .join(QuotaClient, QuotaClient.id == QuotaApproval.client_id)
        .where(QuotaApproval.created >= now - APPROVALS_LOOK_BACK)
    ):
        yield Event(
            kind="quota_override_approved",
            key=f"quota-approval:{approval.id}",
            title=f"Override approved: {client.name} may create {approval.extra} more",
            body=f"Valid until {approval.expires.isoformat(timespec='minutes')}.",
        )

"""What sync tells through notifications: a gap in a producer's sequences held
longer than SYNC_ALERT_GAP_HOURS, transactions held or quarantined, a producer
silent for SYNC_ALERT_SILENT_DAYS; each recovers once its cause is gone."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sync.models import HELD, QUARANTINED, IncomingTransaction, SyncProducer
from tracker.notifications.events import AlertReport, Event

PREFIX = "sync:"


def _gap_since(session: Session, producer: SyncProducer) -> datetime | None:
    """When the first transaction past the producer's gap arrived."""
    table = IncomingTransaction.__table__
    return session.scalar(
        select(func.min(table.c.received)).where(
            table.c.producer_id == producer.id,
            table.c.sequence > producer.received_through,
        )
    )


def _set_aside(session: Session) -> dict[int, dict[str, int]]:
    table = IncomingTransaction.__table__
    counts: dict[int, dict[str, int]] = {}
    for producer_id, status, count in session.execute(
        select(table.c.producer_id, table.c.status, func.count())
        .where(table.c.status.in_((HELD, QUARANTINED)))
        .group_by(table.c.producer_id, table.c.status)
    ):
        counts.setdefault(producer_id, {})[status] = count
    return counts


def sync_alerts(session: Session, config: Mapping, now: datetime) -> AlertReport:
    """Producers with a long gap, set-aside transactions, or long silence;
    disabled producers are held."""
    report = AlertReport()
    gap_hours = config["SYNC_ALERT_GAP_HOURS"]
    silent_days = config["SYNC_ALERT_SILENT_DAYS"]
    set_aside = _set_aside(session)
    for producer in session.scalars(select(SyncProducer)):
        key = f"{PREFIX}{producer.producer_id}:"
        if not producer.active:
            report.held.add(key)
            continue
        if gap_hours and producer.highest_received > producer.received_through:
            since = _gap_since(session, producer)
            if since and now - since > timedelta(hours=gap_hours):
                report.active.append(
                    Event(
                        kind="sync_gap",
                        key=key + "gap",
                        title=f"Sync: {producer.producer_id} has a gap after"
                        f" sequence {producer.received_through}",
                        body=f"Later transactions (up to"
                        f" {producer.highest_received}) wait since"
                        f" {since.isoformat(timespec='minutes')}: the missing"
                        " ones were never delivered (a file not carried?).",
                        subject=producer.producer_id,
                    )
                )
        counts = set_aside.get(producer.id, {})
        if counts:
            report.active.append(
                Event(
                    kind="sync_set_aside",
                    key=key + "set-aside",
                    title=f"Sync: {producer.producer_id} has"
                    f" {counts.get(HELD, 0)} held and"
                    f" {counts.get(QUARANTINED, 0)} quarantined transactions",
                    body="Held: their model is not on SYNC_MODELS. Quarantined:"
                    " their payload cannot be opened. Fix the cause, then"
                    " manage.py sync reapply.",
                    subject=producer.producer_id,
                )
            )
        contact = producer.last_contact or producer.created
        if silent_days and now - contact > timedelta(days=silent_days):
            report.active.append(
                Event(
                    kind="sync_silent",
                    key=key + "silent",
                    title=f"Sync: {producer.producer_id} silent for more than"
                    f" {silent_days} days",
                    body=f"Last contact {contact.isoformat(timespec='minutes')}.",
                    subject=producer.producer_id,
                )
            )
    return report

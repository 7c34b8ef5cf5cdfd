"""Recording what is worth telling, once.

Parts of the application report two things through sources they register:

- **conditions** (``add_alert_source``): what is wrong now, each with a stable
  key. A condition seen for the first time opens an alert and is announced; a
  key no longer reported closes its alert and announces the recovery; a key
  under a held prefix (a paused instance) is neither announced nor recovered.
- **events** (``add_event_source``): things that happened (a registration, a
  job that failed), each told once by its key.

Evaluation records notifications and their deliveries in the caller's
transaction; sending happens later, in a task. Plain functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import Flask, current_app
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tracker.notifications.models import Delivery, Notification, OpenAlert
from tracker.notifications.routing import route

ALERT_SOURCES_KEY = "tracker.alert_sources"
EVENT_SOURCES_KEY = "tracker.event_sources"


@dataclass(frozen=True)
class Event:
    kind: str
    key: str
    title: str
    body: str = ""
    organisation: str | None = None
    tags: tuple[str, ...] = ()
    # What the alert is about ("https://clinic-1.example.org"), for its recovery.
    subject: str = ""


@dataclass
class AlertReport:
    """What an alert source sees now: its active conditions, and the key
    prefixes whose alerts are held as they are (silenced, not recovered)."""

    active: list[Event] = field(default_factory=list)
    held: set[str] = field(default_factory=set)


AlertSource = Callable[[Session, Mapping, datetime], AlertReport]
EventSource = Callable[[Session, Mapping, datetime], Iterable[Event]]


def add_alert_source(app: Flask, prefix: str, source: AlertSource) -> None:
    """``source`` reports conditions whose keys start with ``prefix``."""
    app.extensions.setdefault(ALERT_SOURCES_KEY, {})[prefix] = source


def add_event_source(app: Flask, name: str, source: EventSource) -> None:
    app.extensions.setdefault(EVENT_SOURCES_KEY, {})[name] = source


def record(
    session: Session,
    config: Mapping,
    event: Event,
    alert: bool = False,
    recovery: bool = False,
) -> Notification | None:
    """Store a notification and one delivery per destination routed to; None
    when no destination is configured for it."""
    targets = route(config, event.kind, event.organisation, event.tags)
    if not targets:
        return None
    notification = Notification(
        key=event.key,
        kind=event.kind,
        alert=alert or recovery,
        recovery=recovery,
        title=event.title[:300],
        body=event.body,
        organisation=event.organisation,
        tags=list(event.tags),
    )
    session.add(notification)
    session.flush()
    session.add_all(
        Delivery(notification_id=notification.id, destination=target.name)
        for target in targets
    )
    return notification


def _reconcile(
    session: Session, config: Mapping, prefix: str, report: AlertReport
) -> int:
    open_alerts = {
        alert.key: alert
        for alert in session.scalars(
            select(OpenAlert).where(OpenAlert.key.startswith(prefix, autoescape=True))
        )
    }
    told = 0
    active = {event.key: event for event in report.active}
    for key, event in active.items():
        if key not in open_alerts and not _held(key, report.held):
            session.add(
                OpenAlert(
                    key=key,
                    kind=event.kind,
                    title=event.title[:300],
                    details={
                        "subject": event.subject,
                        "organisation": event.organisation,
                        "tags": list(event.tags),
                    },
                )
            )
            told += record(session, config, event, alert=True) is not None
    for key, alert in open_alerts.items():
        if key in active or _held(key, report.held):
            continue
        session.delete(alert)
        details = alert.details or {}
        recovered = Event(
            kind=alert.kind,
            key=key,
            title=f"Recovered: {details.get('subject') or alert.title}",
            body=(
                f"It was: {alert.title}, "
                f"since {alert.opened.isoformat(timespec='minutes')}."
            ),
            organisation=details.get("organisation"),
            tags=tuple(details.get("tags", ())),
        )
        told += record(session, config, recovered, recovery=True) is not None
    return told


def _held(key: str, held: set[str]) -> bool:
    return any(key.startswith(prefix) for prefix in held)


def _record_once(session: Session, config: Mapping, events: Iterable[Event]) -> int:
    events = list(events)
    if not events:
        return 0
    told_before = set(
        session.scalars(
            select(Notification.key).where(
                Notification.key.in_([event.key for event in events])
            )
        )
    )
    told = 0
    for event in events:
        if event.key not in told_before:
            told_before.add(event.key)
            told += record(session, config, event) is not None
    return told


def evaluate(session: Session, config: Mapping, now: datetime) -> int:
    """Ask every source; record what is new; return how many notifications."""
    told = 0
    for prefix, source in current_app.extensions.get(ALERT_SOURCES_KEY, {}).items():
        told += _reconcile(session, config, prefix, source(session, config, now))
    for source in current_app.extensions.get(EVENT_SOURCES_KEY, {}).values():
        told += _record_once(session, config, source(session, config, now))
    return told


def prune_notifications(session: Session, keep_days: int, now: datetime) -> int:
    """Forget notifications older than ``keep_days``; return how many."""
    result = session.execute(
        delete(Notification).where(
            Notification.created < now - timedelta(days=keep_days)
        )
    )
    return result.rowcount

"""Sending pending deliveries through Apprise, one message per destination.

Everything pending for a destination goes out together: one notification as
itself, several as one digest listing them. A destination that fails keeps
its deliveries pending for the next attempt, until NOTIFICATION_RETRIES.
Plain functions over a session; the caller commits.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import apprise
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from tracker.db_types import utcnow
from tracker.notifications.models import FAILED, PENDING, SENT, Delivery, Notification
from tracker.notifications.routing import Destination, destinations

ERROR_MAX = 1000
BACKOFF_MAX_SECONDS = 3600
# A sender that died holding deliveries frees them after this.
CLAIM_EXPIRES = timedelta(minutes=10)
# Send (destination URL, title, body, Apprise type) -> error, "" when delivered.
Sender = Callable[[str, str, str, str], str]


def apprise_send(
    url: str, title: str, body: str, notify_type: str = apprise.NotifyType.INFO
) -> str:
    """Deliver one message with Apprise; return what went wrong, if anything."""
    service = apprise.Apprise()
    service.add(url)
    with apprise.LogCapture(level=logging.WARNING) as log:
        delivered = bool(
            service.notify(title=title, body=body, notify_type=notify_type)
        )
    if delivered:
        return ""
    return (log.getvalue().strip() or "Apprise could not deliver it")[-ERROR_MAX:]


def message(app_name: str, notifications: Sequence[Notification]) -> tuple[str, str]:
    """(title, body) of one destination's message: one notification, or a digest."""
    if len(notifications) == 1:
        only = notifications[0]
        return f"{app_name}: {only.title}", only.body or only.title
    lines = [f"- {n.title}" + (f": {n.body}" if n.body else "") for n in notifications]
    return (
        f"{app_name}: {len(notifications)} changes",
        "\n".join(lines),
    )


def message_type(notifications: Sequence[Notification]) -> str:
    """Apprise's type of a message: a failure if it holds an alert, a success
    if only recoveries, else information."""
    if any(n.alert and not n.recovery for n in notifications):
        return apprise.NotifyType.FAILURE
    if all(n.recovery for n in notifications):
        return apprise.NotifyType.SUCCESS
    return apprise.NotifyType.INFO


@dataclass
class Sent:
    delivered: int = 0
    failed: int = 0  # attempts that failed and will be tried again
    given_up: int = 0
    next_in: float | None = None  # seconds until the first retry is due


def _claim(session: Session, commit: Callable[[], None]) -> str:
    """Mark what is pending (and not held by a live sender) as this sender's."""
    token = uuid.uuid4().hex
    session.execute(
        update(Delivery)
        .where(
            Delivery.status == PENDING,
            or_(Delivery.next_attempt.is_(None), Delivery.next_attempt <= utcnow()),
            or_(
                Delivery.claim.is_(None),
                Delivery.claimed_at < utcnow() - CLAIM_EXPIRES,
            ),
        )
        .values(claim=token, claimed_at=utcnow())
    )
    commit()
    return token


def send_pending(
    session: Session,
    config: Mapping,
    commit: Callable[[], None],
    send: Sender = apprise_send,
) -> Sent:
    """Send what is pending, destination by destination; commits the claim
    before sending and leaves the outcome for the caller to commit."""
    by_name: dict[str, Destination] = {d.name: d for d in destinations(config)}
    token = _claim(session, commit)
    pending = session.execute(
        select(Delivery, Notification)
        .join(Notification, Notification.id == Delivery.notification_id)
        .where(Delivery.claim == token)
        .order_by(Notification.created, Notification.id)
    ).all()
    grouped: dict[str, list[tuple[Delivery, Notification]]] = defaultdict(list)
    for delivery, notification in pending:
        grouped[delivery.destination].append((delivery, notification))
    outcome = Sent()
    retries = config["NOTIFICATION_RETRIES"]
    backoff = config["NOTIFICATION_BACKOFF_SECONDS"]
    for name, rows in grouped.items():
        destination = by_name.get(name)
        notifications = [n for _, n in rows]
        title, body = message(config["APP_NAME"], notifications)
        error = (
            send(destination.url, title, body, message_type(notifications))
            if destination is not None
            else "this destination is no longer configured"
        )
        for delivery, _ in rows:
            delivery.claim = None
            delivery.attempts += 1
            delivery.error = error
            if not error:
                delivery.status, delivery.sent_at = SENT, utcnow()
                outcome.delivered += 1
            elif destination is None or delivery.attempts > retries:
                delivery.status = FAILED
                outcome.given_up += 1
            else:
                wait = min(backoff * 2 ** (delivery.attempts - 1), BACKOFF_MAX_SECONDS)
                delivery.next_attempt = utcnow() + timedelta(seconds=wait)
                outcome.failed += 1
                outcome.next_in = min(outcome.next_in or wait, wait)
    return outcome

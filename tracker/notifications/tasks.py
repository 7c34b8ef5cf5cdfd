"""The tasks that evaluate conditions and send notifications: never in a
request or a crawl, retried with backoff while a destination fails."""

from __future__ import annotations

import logging

from celery import shared_task
from flask import current_app
from kombu.exceptions import OperationalError

from tracker.db_types import utcnow
from tracker.extensions import db
from tracker.notifications.events import evaluate
from tracker.notifications.sending import send_pending

EVALUATE_TASK = "tracker.notifications.evaluate"
SEND_TASK = "tracker.notifications.send"
BACKOFF_MAX_SECONDS = 3600
BROKER_ERRORS = (OperationalError, OSError)
logger = logging.getLogger(__name__)


@shared_task(name=EVALUATE_TASK, ignore_result=True)
def evaluate_notifications() -> None:
    """Record what changed since the last evaluation, then send it."""
    evaluate(db.session, current_app.config, utcnow())
    db.session.commit()
    # Also what an earlier send left pending (its retries were spent).
    send_soon()


@shared_task(name=SEND_TASK, bind=True, ignore_result=True, max_retries=None)
def send_notifications(self) -> None:
    """Send what is pending; while a destination fails, try again later."""
    config = current_app.config
    sent = send_pending(db.session, config, db.session.commit)
    db.session.commit()
    if sent.failed and self.request.retries < config["NOTIFICATION_RETRIES"]:
        first = config["NOTIFICATION_BACKOFF_SECONDS"]
        countdown = min(first * 2**self.request.retries, BACKOFF_MAX_SECONDS)
        raise self.retry(countdown=countdown)


def send_soon() -> None:
    """Queue a send; if the broker is away, the next evaluation sends instead."""
    try:
        send_notifications.apply_async()
    except BROKER_ERRORS as exc:  # nothing is lost: it is sent later
        logger.warning("notifications wait for the next evaluation: %s", exc)


def evaluate_soon() -> None:
    """Queue an evaluation (at the end of a crawl run, say)."""
    try:
        evaluate_notifications.apply_async()
    except BROKER_ERRORS as exc:
        logger.warning("notifications wait for the next evaluation: %s", exc)

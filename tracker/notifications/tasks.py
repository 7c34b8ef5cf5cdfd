"""The tasks that evaluate conditions and send notifications: never in a
request or a crawl, retried with backoff while a destination fails."""

from __future__ import annotations

import logging

from celery import shared_task
from flask import current_app
from kombu.exceptions import OperationalError

from tracker.batch import operations
from tracker.batch.models import RESULT_FAILED
from tracker.db_types import utcnow
from tracker.extensions import db
from tracker.notifications.events import evaluate
from tracker.notifications.sending import send_pending

EVALUATE_TASK = "tracker.notifications.evaluate"
SEND_TASK = "tracker.notifications.send"
EVALUATION_OPERATION = "notifications"
EVALUATION_WAIT_SECONDS = 5
BROKER_ERRORS = (OperationalError, OSError)
logger = logging.getLogger(__name__)


@shared_task(name=EVALUATE_TASK, bind=True, ignore_result=True, max_retries=None)
def evaluate_notifications(self) -> None:
    """Record what changed since the last evaluation, then send it. One
    evaluation at a time: two at once could judge from different moments and
    announce a recovery that did not happen."""
    try:
        operation = operations.create_synchronous(db.session, EVALUATION_OPERATION)
    except operations.AlreadyActive:
        db.session.rollback()
        raise self.retry(countdown=EVALUATION_WAIT_SECONDS) from None
    db.session.commit()
    try:
        told = evaluate(db.session, current_app.config, utcnow())
        db.session.flush()
        operations.finish(db.session, operation.id, output_data={"told": told})
        db.session.commit()
    except BaseException:
        db.session.rollback()
        operations.finish(db.session, operation.id, result=RESULT_FAILED)
        db.session.commit()
        raise
    # Also what an earlier send left pending and is now due.
    send_soon()


@shared_task(name=SEND_TASK, ignore_result=True)
def send_notifications() -> None:
    """Send what is due; while a destination fails, come back when its next
    attempt is due (each delivery keeps its own, doubling, wait)."""
    sent = send_pending(db.session, current_app.config, db.session.commit)
    db.session.commit()
    if sent.next_in is not None:
        send_soon(countdown=sent.next_in)


def send_soon(countdown: float = 0) -> None:
    """Queue a send; if the broker is away, the next evaluation sends instead."""
    try:
        send_notifications.apply_async(countdown=countdown)
    except BROKER_ERRORS as exc:  # nothing is lost: it is sent later
        logger.warning("notifications wait for the next evaluation: %s", exc)


def evaluate_soon() -> None:
    """Queue an evaluation (at the end of a crawl run, say)."""
    try:
        evaluate_notifications.apply_async()
    except BROKER_ERRORS as exc:
        logger.warning("notifications wait for the next evaluation: %s", exc)

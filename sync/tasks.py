"""Celery tasks of the sync server."""

from celery import shared_task
from flask import current_app

from sync.deliveries import DeliverySettings, apply_all
from tracker.extensions import db

APPLY_TASK = "sync.tasks.apply_pending"


@shared_task(name=APPLY_TASK, ignore_result=True)
def apply_pending() -> None:
    """Apply what is waiting and retry parked transactions (run by beat every
    SYNC_APPLY_INTERVAL), e.g. after a crash cut a delivery short."""
    apply_all(
        db.session, DeliverySettings.from_config(current_app.config), db.session.commit
    )

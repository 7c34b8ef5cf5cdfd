"""Celery tasks of the quota controller."""

from celery import shared_task
from flask import current_app
from sqlalchemy import select

from quota.controller import HttpTransport, Policy
from quota.models import ControllerQuota
from quota.pulls import run_pull
from tracker.extensions import db

PULL_TASK = "quota.tasks.pull_quotas"


@shared_task(name=PULL_TASK, ignore_result=True)
def pull_quotas() -> None:
    """Pull every active quota (run by beat every QUOTA_PULL_INTERVAL)."""
    with HttpTransport.from_config(current_app.config) as transport:
        for quota_id in db.session.scalars(
            select(ControllerQuota.id).where(ControllerQuota.active.is_(True))
        ).all():
            run_pull(
                db.session,
                db.session.get(ControllerQuota, quota_id),
                transport,
                db.session.commit,
                policy=Policy.from_config(current_app.config),
            )

"""Quota and allocation conditions reach a real HTTP hook, once each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from allocation.importing import import_sacct, import_snapshots
from quota.models import ControllerQuota, QuotaClient
from tests.allocation.example import (
    build_kep_site,
    eight_days_of_cpu,
    eight_days_of_disk,
)
from tests.receivers import HookReceiver
from tracker.extensions import db
from tracker.notifications.events import evaluate
from tracker.notifications.sending import send_pending


def tell(app, now) -> None:
    evaluate(db.session, app.config, now)
    db.session.commit()
    send_pending(db.session, app.config, db.session.commit)
    db.session.commit()


def test_kep5s_pool_over_its_allocation_is_told_once(make_app):
    with HookReceiver() as hook:
        app = make_app(NOTIFICATION_URLS=[hook.url])
        with app.app_context():
            build_kep_site()
            import_sacct(db.session, eight_days_of_cpu(), ZoneInfo("UTC"))
            import_snapshots(db.session, eight_days_of_disk(), ZoneInfo("UTC"))
            db.session.commit()
            during = datetime(2100, 2, 15, tzinfo=UTC)  # in KEP 5's period
            tell(app, during)
            tell(app, during + timedelta(hours=1))
    # ProjectD's CPU (700 of 60) is over; ProjectA's disk peak (100 of 600) is not.
    assert [m["title"] for m in hook.received] == [
        "Instance Tracker: ProjectD CPU Hours (2100Q1) is over its allocation"
    ]
    assert hook.received[0]["type"] == "failure"


def test_a_quota_near_its_target_and_a_silent_client_are_told(make_app):
    with HookReceiver() as hook:
        app = make_app(NOTIFICATION_URLS=[hook.url], QUOTA_WARNING_PERCENT=80)
        with app.app_context():
            now = datetime.now(UTC)
            quota = ControllerQuota(
                record_kind="visit",
                target=100,
                window_start=now - timedelta(days=10),
                window_expires=now + timedelta(days=30),
                created=now - timedelta(days=10),
            )
            quota.clients.append(
                QuotaClient(
                    name="clinic-1",
                    endpoint="http://127.0.0.1:9",
                    secret="s",
                    count=85,
                    last_contact=now - timedelta(days=5),
                )
            )
            db.session.add(quota)
            db.session.commit()
            tell(app, now)
            tell(app, now + timedelta(minutes=5))
    assert len(hook.received) == 1
    digest = hook.received[0]["message"]
    assert "The visit quota is at 85 % of its target" in digest
    assert "Quota client clinic-1 (visit) has not answered for 5 days" in digest

"""Alerts through real receivers: one notification per change of state, a
recovery that pairs with its alert, digests, pauses, routing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from tests.fleet import JSON, STATUS, Behaviour, Fleet
from tests.receivers import HookReceiver, MailReceiver
from tracker.batch.models import BatchOperation
from tracker.db_types import utcnow
from tracker.extensions import db
from tracker.instances.crawling import SCOPE_ALL
from tracker.instances.launch import launch_crawl
from tracker.instances.models import Instance, InstanceTag, Pause
from tracker.instances.tasks import crawl_now
from tracker.notifications.events import evaluate
from tracker.notifications.models import Delivery, Notification
from tracker.notifications.sending import send_pending

CRAWLING = {
    "CRAWLING_ENDPOINTS": [{"url": "/info"}],
    "CRAWL_DENY_NETWORKS": [],
    "CRAWL_TIMEOUT": 3.0,
    "CRAWL_CONNECT_TIMEOUT": 1.0,
}
UP = Behaviour(JSON, data={"version": "3.3"})
BROKEN = Behaviour(STATUS, status=500)


def add(url: str, organisation: str = "Clinics", tags=()) -> int:
    instance = Instance(
        url=url,
        contact="C",
        email="c@example.org",
        organisation=organisation,
        approved=True,
    )
    db.session.add(instance)
    db.session.flush()
    db.session.add_all(InstanceTag(instance_id=instance.id, tag=t) for t in tags)
    db.session.commit()
    return instance.id


def crawl_and_tell(app) -> None:
    """A crawl run, then what beat and the worker do after it."""
    launch_crawl(SCOPE_ALL, run=crawl_now)
    evaluate(db.session, app.config, utcnow())
    db.session.commit()
    send_pending(db.session, app.config, db.session.commit)
    db.session.commit()


def test_down_over_two_crawls_then_recovered_is_one_alert_and_one_recovery(
    make_app,
):
    with (
        HookReceiver() as hook,
        MailReceiver() as mail,
        Fleet({"127.0.61.1": UP}) as fleet,
    ):
        app = make_app(**CRAWLING, NOTIFICATION_URLS=[hook.url, mail.url])
        with app.app_context():
            add(fleet.url("127.0.61.1"))
            crawl_and_tell(app)
            assert hook.received == []
            fleet.behaviours["127.0.61.1"] = BROKEN
            crawl_and_tell(app)
            crawl_and_tell(app)  # still down: not announced again
            assert [m["title"] for m in hook.received] == [
                f"Instance Tracker: {fleet.url('127.0.61.1')} is down"
            ]
            assert "HTTP 500" in hook.received[0]["message"]
            fleet.behaviours["127.0.61.1"] = UP
            crawl_and_tell(app)
            crawl_and_tell(app)
            titles = [m["title"] for m in hook.received]
            assert len(titles) == 2
            assert (
                titles[1] == f"Instance Tracker: Recovered: {fleet.url('127.0.61.1')}"
            )
            assert [m["Subject"] for m in mail.messages] == titles
            assert mail.messages[0]["To"] == "ops@example.org"


def test_many_changes_in_one_run_are_one_digest(make_app):
    addresses = [f"127.0.62.{n}" for n in range(1, 5)]
    with HookReceiver() as hook, Fleet(dict.fromkeys(addresses, UP)) as fleet:
        app = make_app(**CRAWLING, NOTIFICATION_URLS=[hook.url])
        with app.app_context():
            for address in addresses:
                add(fleet.url(address))
            crawl_and_tell(app)
            for address in addresses[:3]:
                fleet.behaviours[address] = BROKEN
            crawl_and_tell(app)
    assert len(hook.received) == 1
    digest = hook.received[0]
    assert digest["title"] == "Instance Tracker: 3 changes"
    assert all(fleet.url(a) in digest["message"] for a in addresses[:3])


def test_a_paused_instance_is_silent_and_not_recovered_by_its_pause(make_app):
    with HookReceiver() as hook, Fleet({"127.0.63.1": BROKEN}) as fleet:
        app = make_app(**CRAWLING, NOTIFICATION_URLS=[hook.url])
        with app.app_context():
            instance_id = add(fleet.url("127.0.63.1"))
            crawl_and_tell(app)
            assert len(hook.received) == 1  # down
            uuid = db.session.get(Instance, instance_id).uuid
            db.session.add(
                Pause(kind="instance", value=uuid, until=utcnow() + timedelta(days=1))
            )
            db.session.commit()
            crawl_and_tell(app)
            assert len(hook.received) == 1  # neither re-announced nor "recovered"
            db.session.execute(Pause.__table__.delete())
            db.session.commit()
            crawl_and_tell(app)
            assert len(hook.received) == 1  # still the same alert, still open


def test_routes_send_organisations_and_tags_to_tagged_urls(make_app):
    with HookReceiver() as everything, HookReceiver() as clinics, HookReceiver() as hpc:
        app = make_app(
            **CRAWLING,
            NOTIFICATION_URLS=[
                everything.url,
                {"url": clinics.url, "tags": ["clinic-team"]},
                {"url": hpc.url, "tags": ["hpc-team"]},
            ],
            NOTIFICATION_ROUTES=[
                {"organisations": ["Clinics"], "to": ["clinic-team"]},
                {"tags": ["slurm"], "events": ["instance_down"], "to": ["hpc-team"]},
            ],
        )
        with (
            Fleet({"127.0.64.1": BROKEN, "127.0.64.2": BROKEN}) as fleet,
            app.app_context(),
        ):
            add(fleet.url("127.0.64.1"), organisation="Clinics")
            add(fleet.url("127.0.64.2"), organisation="Uni", tags=["slurm"])
            crawl_and_tell(app)
    assert len(everything.received) == 1
    assert "2 changes" in everything.received[0]["title"]
    assert fleet.url("127.0.64.1") in clinics.received[0]["title"]
    assert fleet.url("127.0.64.2") in hpc.received[0]["title"]
    assert len(clinics.received) == len(hpc.received) == 1


def test_a_failed_job_is_told_once(make_app):
    with HookReceiver() as hook:
        app = make_app(NOTIFICATION_URLS=[hook.url])
        with app.app_context():
            now = datetime.now(UTC)
            db.session.add(
                BatchOperation(
                    operation_type="usage-import",
                    status="finished",
                    result="failed",
                    fault="database unreachable",
                    created=now,
                    finished=now,
                )
            )
            db.session.commit()
            for _ in range(2):
                evaluate(db.session, app.config, utcnow())
                db.session.commit()
                send_pending(db.session, app.config, db.session.commit)
                db.session.commit()
    assert len(hook.received) == 1
    assert "failed" in hook.received[0]["title"]
    assert hook.received[0]["message"] == "database unreachable"


def test_an_unreachable_destination_keeps_its_error_and_is_given_up(make_app):
    app = make_app(
        NOTIFICATION_URLS=["json://127.0.0.1:9/nobody"], NOTIFICATION_RETRIES=1
    )
    with app.app_context():
        now = datetime.now(UTC)
        db.session.add(
            BatchOperation(
                operation_type="crawl",
                status="finished",
                result="failed",
                created=now,
                finished=now,
            )
        )
        db.session.commit()
        evaluate(db.session, app.config, utcnow())
        db.session.commit()
        send_pending(db.session, app.config, db.session.commit)
        db.session.commit()
        # Not tried again before its wait is over...
        sent = send_pending(db.session, app.config, db.session.commit)
        assert (sent.delivered, sent.failed, sent.given_up) == (0, 0, 0)
        delivery = db.session.scalar(select(Delivery))
        assert delivery.next_attempt > utcnow() + timedelta(seconds=20)
        # ...then tried, and given up after NOTIFICATION_RETRIES more attempts.
        db.session.execute(update(Delivery).values(next_attempt=None))
        send_pending(db.session, app.config, db.session.commit)
        db.session.commit()
        db.session.expire_all()
        delivery = db.session.scalar(select(Delivery))
        assert (delivery.status, delivery.attempts) == ("failed", 2)
        assert "127.0.0.1" in delivery.error
        assert db.session.scalar(select(func.count(Notification.id))) == 1


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("NOTIFICATION_URLS", ["nonsense://x"], "not a URL Apprise supports"),
        ("NOTIFICATION_URLS", "json://a/b", "a list of Apprise URLs"),
        ("NOTIFICATION_ROUTES", [{"to": ["x"], "events": ["boom"]}], "boom"),
        ("NOTIFICATION_ROUTES", [{"events": ["registration"]}], '"to"'),
    ],
)
def test_bad_notification_settings_are_one_line(make_app, setting, value, message):
    from tracker.settings import SettingsError

    with pytest.raises(SettingsError) as raised:
        make_app(**{setting: value})
    text = str(raised.value)
    assert setting in text and message in text and "\n" not in text


def test_a_route_to_a_tag_no_url_has_is_refused_at_start_up(make_app):
    from tracker.settings import SettingsError

    with pytest.raises(SettingsError, match="no URL of NOTIFICATION_URLS has the tag"):
        make_app(
            NOTIFICATION_URLS=["json://127.0.0.1:9/x"],
            NOTIFICATION_ROUTES=[{"tags": ["x"], "to": ["nosuchtag"]}],
        )


def test_alerts_are_failures_and_recoveries_successes_for_apprise(make_app):
    with HookReceiver() as hook, Fleet({"127.0.65.1": BROKEN}) as fleet:
        app = make_app(**CRAWLING, NOTIFICATION_URLS=[hook.url])
        with app.app_context():
            add(fleet.url("127.0.65.1"))
            crawl_and_tell(app)
            fleet.behaviours["127.0.65.1"] = UP
            crawl_and_tell(app)
    assert [m["type"] for m in hook.received] == ["failure", "success"]


def test_a_new_server_whose_first_crawl_fails_is_down_at_once(make_app):
    """Registration is contact, but a failed crawl after it means down."""
    with HookReceiver() as hook, Fleet({"127.0.66.1": BROKEN}) as fleet:
        app = make_app(**CRAWLING, NOTIFICATION_URLS=[hook.url])
        with app.app_context():
            client = app.test_client()
            payload = {
                "url": fleet.url("127.0.66.1"),
                "contact": "C",
                "email": "c@example.org",
                "organisation": "O",
            }
            assert client.post("/api/instance/", json=payload).status_code == 201
            crawl_and_tell(app)
    # One digest: the registration awaiting approval, and the server down.
    assert len(hook.received) == 1
    digest = hook.received[0]["message"]
    assert f"{fleet.url('127.0.66.1')} is down" in digest
    assert "New registration awaiting approval" in digest

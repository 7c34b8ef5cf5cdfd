"""Notifications go out from a real Celery worker, retried while the
destination fails; and ``manage.py notify test``; and the page."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tests.celery_processes import celery_environment, start_worker
from tests.receivers import HookReceiver
from tests.test_cli import manage_command
from tracker.batch.models import BatchOperation
from tracker.extensions import db
from tracker.notifications.tasks import evaluate_soon

pytestmark = pytest.mark.slow


def failed_job() -> None:
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


def test_a_real_worker_retries_a_failing_destination_until_delivered(
    make_app, tmp_path
):
    with HookReceiver(failures=2) as hook:
        settings = {
            "NOTIFICATION_URLS": [hook.url],
            "NOTIFICATION_BACKOFF_SECONDS": 1,
        }
        app = make_app(**settings)
        with app.app_context():
            failed_job()
        env = celery_environment(
            {
                **settings,
                "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            },
            tmp_path / "instance",
        )
        worker = start_worker(env, tmp_path / "worker.log", concurrency=1)
        try:
            with app.app_context():
                evaluate_soon()
            deadline = time.monotonic() + 60
            while not hook.received and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            worker.stop()
    assert hook.attempts == 3
    assert len(hook.received) == 1
    assert "database unreachable" in hook.received[0]["message"]


def test_notify_test_says_where_it_could_and_could_not_send(database_url, tmp_path):
    with HookReceiver() as hook:
        manage = manage_command(database_url, tmp_path)
        sent = manage(
            "notify", "test", env={"TRACKER_NOTIFICATION_URLS": repr([hook.url])}
        )
        assert sent.returncode == 0, sent.stderr
        assert "sent" in sent.stdout
        assert hook.received[0]["title"] == "Instance Tracker: test"
    failed = manage(
        "notify",
        "test",
        env={"TRACKER_NOTIFICATION_URLS": repr(["json://127.0.0.1:9/x"])},
    )
    assert failed.returncode == 1
    assert "FAILED" in failed.stdout
    empty = manage("notify", "test")
    assert empty.returncode == 1
    assert "NOTIFICATION_URLS is empty" in empty.stderr


def test_the_page_lists_what_was_sent_where_with_errors(make_app, user, tmp_path):
    from tests.support import Login
    from tracker.db_types import utcnow
    from tracker.notifications.events import evaluate
    from tracker.notifications.sending import send_pending

    app = make_app(NOTIFICATION_URLS=["json://127.0.0.1:9/nobody"])
    with app.app_context():
        failed_job()
        evaluate(db.session, app.config, utcnow())
        db.session.commit()
        send_pending(db.session, app.config, db.session.commit)
        db.session.commit()
    client = app.test_client()
    Login(client)()
    html = client.get("/notifications").get_data(as_text=True)
    assert "usage-import" in html
    assert "json://127.0.0.1:9/nobody" in html
    assert "Connection error" in html

"""Sync conditions told through a real webhook: held or quarantined
transactions, a gap held too long, a silent producer; each recovers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sync.wire.bundles import make_bundle
from tests.receivers import HookReceiver
from tests.sync.support import FIELD_MODELS, register, wire
from tracker.db_types import utcnow
from tracker.extensions import db
from tracker.notifications.events import evaluate
from tracker.notifications.sending import send_pending
from tracker.settings import SettingsError

PUSH = "/api/sync/push"


def tell(app, later=timedelta(0)) -> None:
    """What beat and the worker do: evaluate the sources, send."""
    with app.app_context():
        evaluate(db.session, app.config, utcnow() + later)
        db.session.commit()
        send_pending(db.session, app.config, db.session.commit)
        db.session.commit()


def push(app, credential, *transactions):
    bundle = make_bundle(list(transactions), credential).as_json()
    assert app.test_client().post(PUSH, json=bundle).status_code == 200


def household(sequence, code, model="Household"):
    return wire("tablet-1", sequence, model, [code], "insert", {"code": code})


def titles(hook) -> list[str]:
    return [
        message["title"].removeprefix("Instance Tracker: ") for message in hook.received
    ]


def test_held_transactions_are_told_once_and_recover_when_applied(make_app):
    with HookReceiver() as hook:
        app = make_app(SYNC_MODELS=["Household"], NOTIFICATION_URLS=[hook.url])
        credential = register(app, "tablet-1")[0]
        push(app, credential, household(1, "H1"), household(2, "M1", "Member"))
        tell(app)
        tell(app)
        assert titles(hook) == [
            "Sync: tablet-1 has 1 held and 0 quarantined transactions"
        ]
        listed = make_app(SYNC_MODELS=FIELD_MODELS, NOTIFICATION_URLS=[hook.url])
        listed.test_cli_runner().invoke(args=["sync", "reapply"])
        tell(listed)
        assert titles(hook)[1] == "Recovered: tablet-1"


def test_a_gap_held_too_long_and_a_silent_producer_are_told(make_app):
    with HookReceiver() as hook:
        app = make_app(
            SYNC_MODELS=FIELD_MODELS,
            NOTIFICATION_URLS=[hook.url],
            SYNC_ALERT_GAP_HOURS=6,
            SYNC_ALERT_SILENT_DAYS=3,
        )
        credential = register(app, "tablet-1")[0]
        push(app, credential, household(1, "H1"))
        push(app, credential, household(3, "H3"))  # 2 never arrives
        tell(app, timedelta(hours=5))
        assert hook.received == []
        tell(app, timedelta(hours=7))
        assert titles(hook) == ["Sync: tablet-1 has a gap after sequence 1"]
        assert "up to 3" in hook.received[0]["message"]
        tell(app, timedelta(days=4))
        assert titles(hook)[-1] == "Sync: tablet-1 silent for more than 3 days"
        push(app, credential, household(2, "H2"))  # the gap closes, contact too
        tell(app)
        assert len(hook.received) == 3
        assert titles(hook)[-1] == "2 changes"
        assert hook.received[-1]["message"].count("Recovered: tablet-1") == 2


def test_a_disabled_producer_is_not_told(make_app):
    with HookReceiver() as hook:
        app = make_app(
            SYNC_MODELS=FIELD_MODELS,
            NOTIFICATION_URLS=[hook.url],
            SYNC_ALERT_SILENT_DAYS=1,
        )
        register(app, "tablet-1")
        app.test_cli_runner().invoke(args=["sync", "revoke", "tablet-1"])
        tell(app, timedelta(days=2))
        assert hook.received == []


def test_alert_settings_are_checked(make_app):
    with pytest.raises(SettingsError, match="SYNC_ALERT_GAP_HOURS"):
        make_app(SYNC_ALERT_GAP_HOURS=-1)

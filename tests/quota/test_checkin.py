"""Client-initiated check-in (``flask quota checkin URL``) against the real
controller served on loopback: laptops behind NAT, reinstalls, clock skew."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from quota.client import QuotaNotSetOrExpiredError, QuotaReachedError
from quota.models import ControllerQuota, QuotaClient, QuotaHistory
from tests.quota.field_app import Visit, create_field_app, field_db
from tracker.db_types import utcnow

DEVICE_CLOCK = ("quota.client.clock.now_timestamp",)


@pytest.fixture
def quota(db):
    with db.session() as session:
        now = utcnow()
        quota = ControllerQuota(
            record_kind="visit",
            target=40,
            window_start=now - timedelta(hours=1),
            window_expires=now + timedelta(days=30),
        )
        for name in ("laptop-1", "laptop-2"):
            # Behind NAT: the controller cannot reach them.
            quota.clients.append(
                QuotaClient(
                    name=name, endpoint="http://127.0.63.9:9", secret=f"s-{name}"
                )
            )
        session.add(quota)
        session.commit()
        return quota.id


@pytest.fixture
def laptop(tmp_path):
    app = create_field_app(
        f"sqlite:///{tmp_path / 'laptop.sqlite'}", "laptop-1", "s-laptop-1"
    )
    yield app
    with app.app_context():
        field_db.session.remove()
        field_db.engine.dispose()


def check_in(field_app, url):
    return field_app.test_cli_runner().invoke(args=["quota", "checkin", url])


def create(field_app, times):
    created = 0
    with field_app.app_context():
        for _ in range(times):
            field_db.session.add(Visit())
            try:
                field_db.session.commit()
                created += 1
            except (QuotaReachedError, QuotaNotSetOrExpiredError):
                field_db.session.rollback()
        field_db.session.remove()
    return created


def controller_view(db, quota_id):
    with db.session() as session:
        quota = session.get(ControllerQuota, quota_id)
        return {
            c.name: (c.count, c.acknowledged, c.pending, c.reinstalled is not None)
            for c in quota.clients
        }


def test_a_laptop_behind_nat_checks_in_and_gets_a_ceiling(
    db, quota, laptop, live_server
):
    assert create(laptop, 1) == 0  # no window before the first check-in
    result = check_in(laptop, live_server)
    assert result.exit_code == 0, result.output
    assert "visit: ceiling" in result.output
    view = controller_view(db, quota)
    granted = view["laptop-1"][2]
    # Reserve 5% of 40 = 2; the rest split as if laptop-2 had answered too.
    assert 0 < granted <= 38
    assert create(laptop, 100) == granted
    again = check_in(laptop, live_server)
    assert again.exit_code == 0
    count, acknowledged, _pending, _ = controller_view(db, quota)["laptop-1"]
    assert count == granted and acknowledged >= count
    total = sum(max(a, p or 0) for _, a, p, _ in controller_view(db, quota).values())
    assert total <= 40


def test_a_wrong_secret_or_unknown_client_is_refused(db, quota, tmp_path, live_server):
    impostor = create_field_app(
        f"sqlite:///{tmp_path / 'x.sqlite'}", "laptop-1", "wrong"
    )
    result = check_in(impostor, live_server)
    assert result.exit_code == 1
    assert "unknown client or wrong client secret" in result.output
    with impostor.app_context():
        field_db.engine.dispose()
    assert controller_view(db, quota)["laptop-1"] == (0, 0, None, False)


def test_a_reinstalled_laptop_keeps_its_earlier_records_counted(
    db, quota, laptop, live_server
):
    check_in(laptop, live_server)
    made = create(laptop, 5)
    check_in(laptop, live_server)
    with laptop.app_context():  # the database is wiped
        field_db.drop_all()
        field_db.create_all()
        field_db.session.remove()
    result = check_in(laptop, live_server)
    assert result.exit_code == 0, result.output
    count, acknowledged, _pending, reinstalled = controller_view(db, quota)["laptop-1"]
    assert (count, reinstalled) == (made, True)
    assert acknowledged >= made
    with db.session() as session:
        events = [h.event for h in session.scalars(select(QuotaHistory))]
    assert "reinstalled" in events


def test_records_a_wiped_laptop_made_after_its_last_report_stay_counted(
    db, quota, laptop, live_server
):
    from quota.controller import committed_total
    from tests.quota.field_app import Quota

    check_in(laptop, live_server)
    check_in(laptop, live_server)  # the raise is confirmed
    made = create(laptop, 100)  # all its room, never reported
    assert made > 0
    with laptop.app_context():  # the database is wiped
        field_db.drop_all()
        field_db.create_all()
        field_db.session.remove()
    assert check_in(laptop, live_server).exit_code == 0
    with laptop.app_context():
        new_ceiling = field_db.session.scalar(select(Quota.ceiling))
        field_db.session.remove()
    with db.session() as session:
        stored = session.get(ControllerQuota, quota)
        laptop_row = next(c for c in stored.clients if c.name == "laptop-1")
        assert laptop_row.reinstalled is not None
        assert stored.retired >= made  # the unseen records are held
        # What the laptop's two installs may create is within what is committed.
        committed = committed_total(session, stored)
        assert made + new_ceiling <= committed <= stored.target


def test_clock_skew_is_reported_and_shown(
    db, quota, laptop, live_server, monkeypatch, client, signed_in
):
    import time

    slow = int(time.time()) - 10 * 86400  # the laptop is 10 days slow
    for name in DEVICE_CLOCK:
        monkeypatch.setattr(name, lambda: slow)
    result = check_in(laptop, live_server)
    assert result.exit_code == 0, result.output
    with db.session() as session:
        skew = session.scalar(
            select(QuotaClient.clock_skew).where(QuotaClient.name == "laptop-1")
        )
    assert skew == pytest.approx(-10 * 86400, abs=120)
    page = signed_in.get("/quotas").get_data(as_text=True)
    assert 'data-problem="clock"' in page and "240.0 hours off" in page
    with laptop.app_context():
        field_db.session.add(Visit())
        with pytest.raises(QuotaNotSetOrExpiredError, match="check the device clock"):
            field_db.session.commit()
        field_db.session.rollback()


def test_a_linked_clients_check_in_is_its_instances_contact(
    db,
    quota,
    laptop,
    live_server,
    client,
    signed_in,
    auth_headers,
    database_url,
    tmp_path,
):
    from tests.support import REGISTRATION, instance_path
    from tests.test_cli import manage_command

    uuid = client.post("/api/instance/", json=REGISTRATION).get_json()["uuid"]
    manage = manage_command(database_url, tmp_path)
    linked = manage("quota", "link", "visit", "laptop-1", uuid)
    assert linked.returncode == 0, linked.stderr
    assert check_in(laptop, live_server).exit_code == 0
    shown = client.get(f"/api/instances/{uuid}", headers=auth_headers).get_json()
    assert shown["last_contact_via"] == "quota"
    page = client.get(instance_path(client, uuid)).get_data(as_text=True)
    assert "quota client" in page and "laptop-1" in page

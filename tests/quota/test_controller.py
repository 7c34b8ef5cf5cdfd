"""The controller against real field clients served on loopback, one of them down."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import timedelta

import pytest
from sqlalchemy import select

from quota.client import QuotaReachedError
from quota.controller import HttpTransport, Policy, committed_total
from quota.models import ControllerQuota, QuotaClient, QuotaHistory
from quota.pulls import run_pull
from tests.quota.field_app import Quota, Visit, create_field_app, field_db
from tests.services import free_port
from tests.support import csrf_token, serve
from tracker.batch.models import BatchOperation
from tracker.db_types import utcnow
from tracker.extensions import db

ADDRESSES = ("127.0.60.1", "127.0.60.2")


@pytest.fixture
def field_clients(tmp_path):
    """Two field applications, each on its own loopback address and database."""
    apps = {}
    with ExitStack() as servers:
        for index, address in enumerate(ADDRESSES):
            name = f"clinic-{index + 1}"
            url = f"sqlite:///{tmp_path / name}.sqlite"
            app = create_field_app(url, name, f"s-{name}")
            apps[name] = (app, servers.enter_context(serve(app, address)))
        yield apps
    for app, _url in apps.values():
        with app.app_context():
            field_db.engine.dispose()


def create_visits(app, times: int) -> int:
    created = 0
    with app.app_context():
        for _ in range(times):
            field_db.session.add(Visit())
            try:
                field_db.session.commit()
                created += 1
            except QuotaReachedError:
                field_db.session.rollback()
    return created


@pytest.fixture
def quota(app, field_clients):
    with app.app_context():
        now = utcnow()
        quota = ControllerQuota(
            record_kind="visit",
            target=100,
            window_start=now - timedelta(hours=1),
            window_expires=now + timedelta(days=10),
        )
        for name, (_app, url) in field_clients.items():
            quota.clients.append(
                QuotaClient(name=name, endpoint=url, secret=f"s-{name}")
            )
        down = f"http://127.0.60.3:{free_port('127.0.60.3')}"
        quota.clients.append(QuotaClient(name="clinic-down", endpoint=down, secret="x"))
        db.session.add(quota)
        db.session.commit()
        return quota.id


def pull(app, quota_id):
    with app.app_context():
        quota = db.session.get(ControllerQuota, quota_id)
        with HttpTransport(timeout=2) as transport:
            return run_pull(
                db.session,
                quota,
                transport,
                db.session.commit,
                policy=Policy.from_config(app.config),
            )


def test_pull_sets_ceilings_on_reachable_clients_and_isolates_the_down_one(
    app, field_clients, quota
):
    operation_id, summary = pull(app, quota)
    assert (summary.reached, summary.unreachable) == (2, 1)
    with app.app_context():
        stored = db.session.get(ControllerQuota, quota)
        ceilings = {c.name: c.acknowledged for c in stored.clients}
        assert ceilings["clinic-down"] == 0
        # 5% of the target stays in reserve for overrides.
        assert ceilings["clinic-1"] + ceilings["clinic-2"] == 95
        assert committed_total(db.session, stored) <= 100
        down = next(c for c in stored.clients if c.name == "clinic-down")
        assert down.last_error
        operation = db.session.get(BatchOperation, operation_id)
        assert (operation.result, operation.done, operation.failed) == ("partial", 2, 1)
        events = {h.event for h in db.session.scalars(select(QuotaHistory))}
        assert {"report", "unreachable", "ceiling"} <= events

    # Clinic 1 works hard, clinic 2 does nothing: headroom moves to clinic 1.
    first_app = field_clients["clinic-1"][0]
    assert create_visits(first_app, 60) == ceilings["clinic-1"]
    assert create_visits(first_app, 5) == 0
    pull(app, quota)
    pull(app, quota)
    with app.app_context():
        stored = db.session.get(ControllerQuota, quota)
        after = {c.name: (c.count, c.acknowledged) for c in stored.clients}
    assert after["clinic-1"][1] > ceilings["clinic-1"]
    assert after["clinic-1"][1] + after["clinic-2"][1] <= 100
    created = create_visits(first_app, 200) + ceilings["clinic-1"]
    assert created + create_visits(field_clients["clinic-2"][0], 200) <= 100


def test_manage_quota_commands(app, field_clients, quota):
    from tracker.cli import cli

    runner = app.test_cli_runner()
    result = runner.invoke(cli, ["quota", "pull", "visit"])
    assert result.exit_code == 0, result.output
    assert "visit: 2 reached, 1 unreachable" in result.output
    assert runner.invoke(cli, ["quota", "pull", "nothing"]).exit_code == 2
    assert runner.invoke(cli, ["quota", "create", "visit", "5"]).exit_code == 1
    assert runner.invoke(cli, ["quota", "create", "consent", "-3"]).exit_code == 2
    bad = runner.invoke(cli, ["quota", "add-client", "visit", "x", "ftp://x", "s"])
    assert bad.exit_code == 2
    refused = runner.invoke(cli, ["quota", "approve", "visit", "garbage", "3"])
    assert refused.exit_code == 1
    assert "not readable" in refused.output


def test_supervisor_override_end_to_end(app, field_clients, quota):
    """The laptop shows a request code, the controller answers, the laptop accepts."""
    import re

    from tracker.cli import cli

    pull(app, quota)
    field_app, _url = field_clients["clinic-2"]
    page = field_app.test_client().get("/quota/visit/override").get_data(as_text=True)
    request_code = re.search(r"id='request-code'>([^<]+)<", page).group(1)
    runner = app.test_cli_runner()
    # The pull handed out all but the reserve (5% of 100): an override of 6
    # is refused with the numbers, one of 5 comes out of the reserve.
    too_many = runner.invoke(cli, ["quota", "approve", "visit", request_code, "6"])
    assert "only 5 of the target of 100 records are free" in too_many.output
    assert "Approve 5 or fewer, or reclaim first" in too_many.output
    result = runner.invoke(cli, ["quota", "approve", "visit", request_code, "5"])
    assert result.exit_code == 0, result.output
    code = result.output.strip()
    again = runner.invoke(cli, ["quota", "approve", "visit", request_code, "5"])
    assert "already approved" in again.output
    applied = field_app.test_client().post("/quota/visit/override", data={"code": code})
    assert "Approved: 5 more" in applied.get_data(as_text=True)
    pull(app, quota)
    with app.app_context():
        stored = db.session.get(ControllerQuota, quota)
        assert committed_total(db.session, stored) <= 100
        events = [h.event for h in db.session.scalars(select(QuotaHistory))]
        assert "override" in events
        clinic = next(c for c in stored.clients if c.name == "clinic-2")
        left = clinic.acknowledged - clinic.count
    assert create_visits(field_app, 200) == left


def test_reclaiming_says_what_idle_clients_gave_back(app, field_clients, quota):
    from quota.client.codes import OverrideRequest
    from tracker.cli import cli

    pull(app, quota)
    runner = app.test_cli_runner()
    code = OverrideRequest.new("clinic-1", "visit", 0).code()
    # Both reachable clinics created nothing: each keeps the fair floor (5).
    refused = runner.invoke(
        cli, ["quota", "approve", "visit", code, "100", "--reclaim"]
    )
    assert refused.exit_code == 1
    message = " ".join(refused.output.split())
    assert "100 more cannot be approved" in message
    assert "idle clients were asked for headroom and gave back 85" in message
    assert "only 90 of the target of 100 records are free" in message
    assert "Approve 90 or fewer" in message
    # What they gave back stays free for the next approval.
    approved = runner.invoke(cli, ["quota", "approve", "visit", code, "90"])
    assert approved.exit_code == 0, approved.output
    with app.app_context():
        stored = db.session.get(ControllerQuota, quota)
        assert committed_total(db.session, stored) == 100


def test_quota_page_shows_progress_and_approves(
    app, client, user, login, field_clients, quota
):
    pull(app, quota)
    login()
    page = client.get("/quotas").get_data(as_text=True)
    assert "clinic-1" in page and "clinic-down" in page
    assert "0 created, 95 committed, of 100" in page
    assert "<th>Client</th><th>Event</th>" in page  # the history has headers
    token = csrf_token(client, "/quotas")
    refused = client.post(
        f"/quotas/{quota}/approve",
        data={"csrf_token": token, "request_code": "nonsense", "extra": "3"},
        follow_redirects=True,
    )
    assert refused.status_code == 400
    assert "not readable" in refused.get_data(as_text=True)
    # What was typed is still there to correct.
    assert 'value="nonsense"' in refused.get_data(as_text=True)
    pulled = client.post(
        f"/quotas/{quota}/pull", data={"csrf_token": token}, follow_redirects=True
    )
    assert "2 reached, 1 unreachable" in pulled.get_data(as_text=True)
    assert client.post(f"/quotas/{quota}/pull").status_code == 400
    from quota.client.codes import OverrideRequest

    request_code = OverrideRequest.new("clinic-1", "visit", 0).code()
    approved = client.post(
        f"/quotas/{quota}/approve",
        data={"csrf_token": token, "request_code": request_code, "extra": "3"},
    )
    assert approved.status_code == 200  # shown, never put in a URL
    assert 'id="approval-code"' in approved.get_data(as_text=True)


def test_an_expired_quota_is_not_pulled_and_nothing_changes(app, field_clients, quota):
    with app.app_context():
        stored = db.session.get(ControllerQuota, quota)
        stored.window_expires = utcnow() - timedelta(minutes=1)
        db.session.commit()
    operation_id, summary = pull(app, quota)
    assert summary is None
    with app.app_context():
        operation = db.session.get(BatchOperation, operation_id)
        assert (operation.result, "not active" in operation.error) == ("failed", True)
        stored = db.session.get(ControllerQuota, quota)
        assert {c.acknowledged for c in stored.clients} == {0}
    field_app = field_clients["clinic-1"][0]
    with field_app.app_context():
        assert field_db.session.scalar(select(Quota.id)) is None


@pytest.fixture
def odd_client():
    """A 'client' that answers with whatever the test sets, on loopback."""
    from flask import Flask, Response

    answers = {}
    odd = Flask("odd")

    @odd.route("/quota/<kind>", methods=["GET", "PUT"])
    def answer(kind):
        status, body = answers["next"]
        return Response(body, status=status, content_type="application/json")

    with serve(odd, "127.0.60.9") as url:
        yield answers, url


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, "[]"),
        (200, "null"),
        (502, '"bad gateway"'),
        (409, "null"),
        (200, '{"count": "x", "ceiling": 1}'),
        (200, '{"count": 1, "ceiling": null}'),
        (200, '{"count": 1, "ceiling": 2, "used_overrides": [{}]}'),
        (200, "[" * 5000),
    ],
)
def test_odd_replies_are_transport_errors(odd_client, status, body):
    from quota.controller import Address, TransportError

    answers, url = odd_client
    answers["next"] = (status, body)
    with HttpTransport(timeout=5) as transport, pytest.raises(TransportError):
        transport.get(Address("odd", url, "s"), "visit")

"""Administration without SQL: the CLI, the Quotas page and the admin API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from quota.models import ControllerQuota, QuotaClient, QuotaHistory
from tests.support import csrf_token
from tracker.cli import cli
from tracker.db_types import utcnow


@pytest.fixture
def quota(db):
    """A visit quota of 100 with two clients: clinic-1 holds 40 (30 created)."""
    with db.session() as session:
        now = utcnow()
        quota = ControllerQuota(
            record_kind="visit",
            target=100,
            window_start=now - timedelta(hours=1),
            window_expires=now + timedelta(days=30),
        )
        quota.clients.append(
            QuotaClient(
                name="clinic-1",
                endpoint="http://127.0.61.1:9",
                secret="s1",
                acknowledged=40,
                count=30,
            )
        )
        quota.clients.append(
            QuotaClient(name="clinic-2", endpoint="http://127.0.61.2:9", secret="s2")
        )
        session.add(quota)
        session.commit()
        return quota.id


def stored(db, quota_id):
    with db.session() as session:
        quota = session.get(ControllerQuota, quota_id)
        return (
            quota.target,
            quota.retired,
            {c.name: (c.weight, c.max_ceiling, c.active) for c in quota.clients},
        )


def test_quota_commands_change_target_window_and_clients(app, db, quota):
    runner = app.test_cli_runner()
    lower = runner.invoke(cli, ["quota", "update", "visit", "--target", "39"])
    assert lower.exit_code == 1
    assert "the target cannot go below 40" in lower.output
    assert "clients may create 40 records (they created 30" in lower.output
    ok = runner.invoke(
        cli, ["quota", "update", "visit", "--target", "60", "--expires", "2099-01-31"]
    )
    assert ok.exit_code == 0, ok.output
    assert "target 100 -> 60" in ok.output
    bad = runner.invoke(cli, ["quota", "update", "visit", "--expires", "2000-01-01"])
    assert "the window must end after it starts" in bad.output
    assert runner.invoke(cli, ["quota", "update", "visit", "--start", "soon"]).exit_code
    changed = runner.invoke(
        cli,
        ["quota", "client", "visit", "clinic-2", "--weight", "2.5", "--max", "20"],
    )
    assert changed.exit_code == 0, changed.output
    off = runner.invoke(cli, ["quota", "client", "visit", "clinic-2", "--inactive"])
    assert off.exit_code == 0
    unknown = runner.invoke(cli, ["quota", "client", "visit", "nobody", "--active"])
    assert unknown.exit_code == 2 and "no client 'nobody'" in unknown.output
    removed = runner.invoke(cli, ["quota", "remove-client", "visit", "clinic-1"])
    assert "its 40 records stay counted" in removed.output
    target, retired, clients = stored(db, quota)
    assert (target, retired) == (60, 40)
    assert clients == {"clinic-2": (2.5, 20, False)}
    # What the removed client may create still counts.
    again = runner.invoke(cli, ["quota", "update", "visit", "--target", "39"])
    assert "the target cannot go below 40" in again.output
    with db.session() as session:
        history = session.scalars(select(QuotaHistory)).all()
        assert {h.event for h in history} >= {
            "updated",
            "client updated",
            "client removed",
        }
        assert {h.actor for h in history} == {"manage.py"}


def test_the_quotas_page_administers_and_shows_history_with_headers(
    app, db, signed_in, quota
):
    client = signed_in
    token = csrf_token(client, "/quotas")
    refused = client.post(
        f"/quotas/{quota}/update",
        data={"csrf_token": token, "target": "10", "active": "on"},
        follow_redirects=True,
    )
    assert "the target cannot go below 40" in refused.get_data(as_text=True)
    with db.session() as session:
        clinic = session.scalar(
            select(QuotaClient).where(QuotaClient.name == "clinic-2")
        )
        clinic_id = clinic.id
    saved = client.post(
        f"/quotas/{quota}/clients/{clinic_id}",
        data={"csrf_token": token, "weight": "3", "max_ceiling": "12"},
        follow_redirects=True,
    )
    assert "weight 1 -&gt; 3" in saved.get_data(as_text=True)
    added = client.post(
        f"/quotas/{quota}/clients",
        data={
            "csrf_token": token,
            "name": "clinic-3",
            "endpoint": "http://127.0.61.3:9",
            "secret": "s3",
        },
        follow_redirects=True,
    )
    page = added.get_data(as_text=True)
    assert "Client added" in page and 'data-client="clinic-3"' in page
    assert "<th>When</th><th>Client</th><th>Event</th>" in page
    assert "client updated" in page and ">clinic-2<" in page
    assert "<script>" not in page  # behaviour comes from static files only
    _target, _retired, clients = stored(db, quota)
    assert clients["clinic-2"] == (3.0, 12, False)  # unchecked: inactive
    gone = client.post(
        f"/quotas/{quota}/clients/{clinic_id}/remove",
        data={"csrf_token": token},
        follow_redirects=True,
    )
    assert "Removed clinic-2" in gone.get_data(as_text=True)


def test_the_admin_api(app, client, auth_headers, quota):
    assert client.get("/api/quotas").status_code == 401
    listed = client.get("/api/quotas", headers=auth_headers).get_json()
    assert listed["items"][0]["record_kind"] == "visit"
    assert listed["items"][0]["committed"] == 40
    too_low = client.patch(
        "/api/quotas/visit", json={"target": 20}, headers=auth_headers
    )
    assert too_low.status_code == 409
    assert too_low.get_json()["field"] == "target"
    assert "below 40" in too_low.get_json()["message"]
    bad = client.patch("/api/quotas/visit", json={"target": "x"}, headers=auth_headers)
    assert (bad.status_code, bad.get_json()["field"]) == (400, "target")
    unknown = client.patch(
        "/api/quotas/visit", json={"colour": 1}, headers=auth_headers
    )
    assert unknown.get_json()["field"] == "colour"
    changed = client.patch(
        "/api/quotas/visit",
        json={"target": 80, "window_expires": "2099-06-30T00:00:00+00:00"},
        headers=auth_headers,
    )
    assert changed.status_code == 200
    assert changed.get_json()["target"] == 80
    made = client.post(
        "/api/quotas/visit/clients",
        json={"name": "clinic-3", "endpoint": "ftp://x", "secret": "s"},
        headers=auth_headers,
    )
    assert made.get_json()["field"] == "endpoint"
    made = client.post(
        "/api/quotas/visit/clients",
        json={"name": "clinic-3", "endpoint": "http://127.0.61.3:9", "secret": "s"},
        headers=auth_headers,
    )
    assert made.status_code == 201
    weighted = client.patch(
        "/api/quotas/visit/clients/clinic-3",
        json={"weight": 4, "max_ceiling": None, "active": False},
        headers=auth_headers,
    )
    detail = weighted.get_json()
    clinic = next(c for c in detail["clients"] if c["name"] == "clinic-3")
    assert (clinic["weight"], clinic["active"]) == (4.0, False)
    assert "forecast" in detail and "runs_out" in clinic["forecast"]
    # Inactive, it is forecast nothing (not "runs out now").
    assert clinic["forecast"]["outlook"] == "inactive"
    assert clinic["forecast"]["runs_out"] is None
    assert (
        client.delete(
            "/api/quotas/visit/clients/nobody", headers=auth_headers
        ).status_code
        == 404
    )
    removed = client.delete("/api/quotas/visit/clients/clinic-1", headers=auth_headers)
    assert removed.get_json()["records_still_counted"] == 40
    history = client.get("/api/quotas/visit/history", headers=auth_headers).get_json()
    assert history["items"][0]["event"] == "client removed"
    assert history["items"][0]["by"] == "API: ada"
    document = client.get("/api/openapi.json").get_json()
    assert "/api/quotas/{kind}/clients/{name}" in document["paths"]
    assert "/api/quotas/{kind}/checkin" in document["paths"]
    assert "QuotaClient" in document["components"]["schemas"]


def test_the_add_client_form_names_every_wrong_field_and_keeps_what_was_typed(
    db, signed_in, quota
):
    typed = {"name": "clinic-1", "endpoint": "ftp://clinic-9.local", "secret": ""}
    typed["csrf_token"] = csrf_token(signed_in, "/quotas")
    refused = signed_in.post(f"/quotas/{quota}/clients", data=typed)
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    assert "Name: &#39;clinic-1&#39; is already a client of this quota" in page
    assert "Address: must start with http:// or https://" in page
    assert "Client secret: 1 to 200 characters" in page
    assert 'value="ftp://clinic-9.local"' in page
    _target, _retired, clients = stored(db, quota)
    assert set(clients) == {"clinic-1", "clinic-2"}


def test_an_inactive_clients_forecast_says_inactive_on_the_page(
    app, db, signed_in, quota
):
    with db.session() as session:
        clinic = session.scalar(
            select(QuotaClient).where(QuotaClient.name == "clinic-1")
        )
        clinic.active, clinic.rate = False, 50.0
        session.commit()
    page = signed_in.get("/quotas").get_data(as_text=True)
    row = page.split('data-client="clinic-1"', 1)[1].split("</tr>", 1)[0]
    assert 'data-outlook="inactive"' in row
    assert "inactive: no more headroom" in row

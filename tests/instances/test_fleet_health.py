"""Fleet health: contact from any channel, expected contact, states, pauses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.support import REGISTRATION
from tracker.extensions import db
from tracker.instances import states
from tracker.instances.models import ContactEvent, Instance


@pytest.fixture
def uuid(client):
    return client.post("/api/instance/", json=REGISTRATION).get_json()["uuid"]


def detail(client, uuid, auth_headers) -> dict:
    return client.get(f"/api/instances/{uuid}", headers=auth_headers).get_json()


def state_at(app, uuid: str, now: datetime) -> states.State:
    """The instance's state on a controlled clock."""
    with app.app_context():
        instance = db.session.scalar(select(Instance).filter_by(uuid=uuid))
        expected = states.expectations(db.session, app.config)
        return states.instance_state(instance, expected, now)


def last_contact(client, uuid, auth_headers) -> datetime:
    return datetime.fromisoformat(detail(client, uuid, auth_headers)["last_contact"])


# --- contact from any channel ---


def test_registration_and_an_empty_patch_are_contact(client, uuid, auth_headers):
    shown = detail(client, uuid, auth_headers)
    assert shown["last_contact_via"] == "registration"
    registered = last_contact(client, uuid, auth_headers)
    assert client.patch(f"/api/instance/{uuid}", json={}).status_code == 200
    shown = detail(client, uuid, auth_headers)
    assert shown["last_contact_via"] == "update"
    assert last_contact(client, uuid, auth_headers) >= registered


def test_a_heartbeat_is_contact_and_its_values_join_the_crawled_ones(
    client, app, uuid, auth_headers
):
    response = client.post(
        f"/api/instance/{uuid}/heartbeat", json={"version": "3.3", "users": 12}
    )
    assert response.status_code == 200
    assert response.get_json()["uuid"] == uuid
    shown = detail(client, uuid, auth_headers)
    assert shown["last_contact_via"] == "heartbeat"
    assert shown["crawled"] == {"version": "3.3", "users": 12}
    # An empty heartbeat is contact too and keeps the values.
    assert client.post(f"/api/instance/{uuid}/heartbeat").status_code == 200
    assert detail(client, uuid, auth_headers)["crawled"]["users"] == 12
    with app.app_context():
        vias = db.session.scalars(select(ContactEvent.via).order_by(ContactEvent.id))
        assert list(vias) == ["registration", "heartbeat", "heartbeat"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"[1, 2]", "body"),
        (b"not json", "body"),
        (b'{"v": 1e400}', "body"),
        (b'{"v": 1' + b"0" * 30 + b"}", "body"),
    ],
)
def test_a_bad_heartbeat_is_400_and_changes_nothing(
    client, uuid, auth_headers, body, field
):
    before = detail(client, uuid, auth_headers)
    response = client.post(
        f"/api/instance/{uuid}/heartbeat",
        data=body,
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.get_json()["field"] == field
    assert detail(client, uuid, auth_headers) == before


def test_a_heartbeat_for_an_unknown_uuid_is_json_404(client):
    response = client.post("/api/instance/no-such-uuid/heartbeat", json={})
    assert response.status_code == 404
    assert response.is_json


def test_heartbeats_are_rate_limited_per_instance(make_app):
    app = make_app(API_HEARTBEAT_RATE_LIMIT="2/minute")
    client = app.test_client()
    first = client.post("/api/instance/", json=REGISTRATION).get_json()["uuid"]
    other = client.post("/api/instance/", json=REGISTRATION).get_json()["uuid"]
    codes = [client.post(f"/api/instance/{first}/heartbeat").status_code for _ in "abc"]
    assert codes == [200, 200, 429]
    assert client.post(f"/api/instance/{other}/heartbeat").status_code == 200


# --- states on a controlled clock ---


def test_an_instance_offline_by_design_checks_in_then_is_late_then_overdue(
    client, app, uuid, auth_headers
):
    client.patch(
        f"/api/instances/{uuid}",
        json={"contact_every": 3600, "contact_grace": 600},
        headers=auth_headers,
    )
    client.post(f"/api/instance/{uuid}/heartbeat")
    seen = last_contact(client, uuid, auth_headers)
    assert state_at(app, uuid, seen + timedelta(minutes=30)).name == states.CHECKING_IN
    late = state_at(app, uuid, seen + timedelta(minutes=65))
    assert (late.name, late.since) == (states.LATE, seen + timedelta(hours=1))
    overdue = state_at(app, uuid, seen + timedelta(hours=3))
    assert overdue.name == states.OVERDUE
    assert overdue.since == seen + timedelta(seconds=4200)


def test_a_server_whose_crawl_fails_is_down_since_the_first_failure(
    client, app, uuid, auth_headers
):
    first_failure = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    with app.app_context():
        instance = db.session.scalar(select(Instance).filter_by(uuid=uuid))
        instance.health, instance.last_error = "down", "cannot connect: refused"
        instance.down_since = first_failure
        instance.last_contact, instance.last_contact_via = first_failure, "crawl"
        db.session.commit()
    down = state_at(app, uuid, first_failure + timedelta(minutes=5))
    assert (down.name, down.since) == (states.DOWN, first_failure)
    assert "refused" in down.reason
    # A heartbeat since: the server is alive, only not reachable by crawling.
    client.post(f"/api/instance/{uuid}/heartbeat")
    now = last_contact(client, uuid, auth_headers) + timedelta(minutes=1)
    assert state_at(app, uuid, now).name == states.CHECKING_IN


def test_an_offline_by_design_instance_is_never_down(client, app, uuid, auth_headers):
    client.put(
        "/api/organisations/Analytical Engines/schedule",
        json={"contact_every": 86400},
        headers=auth_headers,
    )
    with app.app_context():
        instance = db.session.scalar(select(Instance).filter_by(uuid=uuid))
        instance.health, instance.down_since = "down", instance.last_contact
        db.session.commit()
    seen = last_contact(client, uuid, auth_headers)
    assert state_at(app, uuid, seen + timedelta(hours=2)).name == states.CHECKING_IN
    # The instance's own schedule wins over its organisation's.
    client.patch(
        f"/api/instances/{uuid}", json={"contact_every": 3600}, headers=auth_headers
    )
    assert state_at(app, uuid, seen + timedelta(hours=2)).name == states.LATE
    assert state_at(app, uuid, seen + timedelta(hours=3)).name == states.OVERDUE


def test_pauses_of_an_instance_a_tag_and_an_organisation(
    client, app, uuid, auth_headers
):
    client.patch(
        f"/api/instances/{uuid}", json={"tags": ["clinic", "ke"]}, headers=auth_headers
    )
    assert detail(client, uuid, auth_headers)["tags"] == ["clinic", "ke"]
    now = datetime.now(UTC)
    until = (now + timedelta(days=2)).isoformat()
    for kind, value in [
        ("instance", uuid),
        ("tag", "clinic"),
        ("organisation", "Analytical Engines"),
    ]:
        response = client.put(
            f"/api/pauses/{kind}/{value}",
            json={"until": until, "note": "rainy season"},
            headers=auth_headers,
        )
        assert response.status_code == 200, response.get_json()
        paused = state_at(app, uuid, now + timedelta(days=1))
        assert (paused.name, paused.reason) == (states.PAUSED, "rainy season")
        # Past its end, a pause no longer applies.
        assert state_at(app, uuid, now + timedelta(days=3)).name != states.PAUSED
        assert (
            client.delete(
                f"/api/pauses/{kind}/{value}", headers=auth_headers
            ).status_code
            == 204
        )
        assert state_at(app, uuid, now + timedelta(days=1)).name != states.PAUSED


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"until": "2020-01-01T00:00:00Z"}, "until"),
        ({"until": "tomorrow"}, "until"),
        ({"until": "2999-01-01T00:00:00"}, "until"),
        ({"note": "no end"}, "until"),
    ],
)
def test_a_bad_pause_names_the_field(client, uuid, auth_headers, body, field):
    response = client.put(
        f"/api/pauses/instance/{uuid}", json=body, headers=auth_headers
    )
    assert response.status_code == 400
    assert response.get_json()["field"] == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tags": ["ok", "not ok"]}, "tags"),
        ({"tags": "clinic"}, "tags"),
        ({"contact_every": -1}, "contact_every"),
        ({"contact_grace": True}, "contact_grace"),
    ],
)
def test_bad_admin_schedule_or_tags_name_the_field(
    client, uuid, auth_headers, body, field
):
    response = client.patch(f"/api/instances/{uuid}", json=body, headers=auth_headers)
    assert response.status_code == 400
    assert response.get_json()["field"] == field


def test_the_list_answers_each_instances_state(client, uuid, auth_headers):
    items = client.get("/api/instances", headers=auth_headers).get_json()["items"]
    assert items[0]["state"]["name"] == states.CHECKING_IN


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("put", "/api/pauses/tag/not%20a%20tag", 400),
        ("put", "/api/pauses/tag/a%00b", 400),
        ("put", "/api/pauses/instance/a%00b", 404),
        ("put", "/api/pauses/organisation/%00", 400),
        ("delete", "/api/pauses/instance/a%00b", 404),
        ("get", "/api/instance/a%00b", 404),
        ("post", "/api/instance/a%00b/heartbeat", 404),
    ],
)
def test_nul_and_junk_in_paths_are_4xx(client, auth_headers, method, path, status):
    until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    response = getattr(client, method)(
        path, json={"until": until}, headers=auth_headers
    )
    assert response.status_code == status
    assert response.is_json

"""Fleet health on the pages: the summary, states on each row, filters, the
detail's health card and its forms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.support import REGISTRATION, Login, csrf_token, instance_path
from tracker.extensions import db
from tracker.instances.models import (
    ContactEvent,
    CrawlResult,
    Instance,
    InstanceTag,
    OrganisationDefault,
    Pause,
)

NOW = datetime.now(UTC)


def add(app, url, **fields) -> Instance:
    with app.app_context():
        instance = Instance(
            url=url,
            contact="C",
            email="c@example.org",
            organisation=fields.pop("organisation", "Clinics"),
            approved=True,
            **fields,
        )
        db.session.add(instance)
        db.session.commit()
        db.session.refresh(instance)
        db.session.expunge(instance)
        return instance


@pytest.fixture
def fleet(app):
    down = add(
        app,
        "https://down.example.org",
        health="down",
        last_error="cannot connect: refused",
        down_since=NOW - timedelta(hours=3),
        last_contact=NOW - timedelta(hours=3),
        last_contact_via="crawl",
        crawled={"version": "3.3"},
    )
    overdue = add(
        app,
        "https://laptop.example.org",
        contact_every=3600,
        contact_grace=600,
        last_contact=NOW - timedelta(days=2),
        last_contact_via="heartbeat",
        crawled={"version": "3.2"},
    )
    up = add(
        app,
        "https://up.example.org",
        health="up",
        last_contact=NOW - timedelta(minutes=5),
        last_contact_via="crawl",
        crawled={"version": "3.3"},
    )
    with app.app_context():
        db.session.add(InstanceTag(instance_id=overdue.id, tag="field"))
        db.session.commit()
    return {"down": down, "overdue": overdue, "up": up}


def page(client, path) -> str:
    response = client.get(path)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_the_list_shows_the_fleet_summary_and_each_rows_state(signed_in, fleet):
    html = page(signed_in, "/")
    assert 'id="fleet-summary"' in html
    assert 'down: <span class="count">1</span>' in html
    assert 'overdue: <span class="count">1</span>' in html
    # Newest problems first: the server down 3 hours ago before the laptop.
    problems = html[html.index('id="newest-problems"') :]
    assert problems.index("down.example.org") < problems.index("laptop.example.org")
    assert "cannot connect: refused" in html


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("state=down", {"down"}),
        ("state=overdue", {"laptop"}),
        ("state=up", {"up"}),
        ("tag=field", {"laptop"}),
    ],
)
def test_the_list_filters_on_state_and_tag(signed_in, fleet, query, shown):
    html = page(signed_in, f"/?{query}")
    table = html[html.index('id="instances"') :]
    listed = {
        name for name in ("down", "laptop", "up") if f"{name}.example.org" in table
    }
    assert listed == shown


def test_the_list_filters_on_a_crawled_value(make_app, user):
    app = make_app(CRAWLED_FIELDS_SETTINGS={"version": {"label": "Version"}})
    client = app.test_client()
    Login(client)()
    add(app, "https://old.example.org", crawled={"version": "3.2"})
    add(app, "https://new.example.org", crawled={"version": "3.3"})
    add(app, "https://number.example.org", crawled={"version": 3.3})
    table = page(client, "/?field=version&value=3.3")
    table = table[table.index('id="instances"') :]
    assert "new.example.org" in table
    assert "number.example.org" in table
    assert "old.example.org" not in table


def test_the_detail_shows_state_contact_and_uptime(app, signed_in, fleet):
    laptop = fleet["overdue"]
    with app.app_context():
        for hours in (30, 40):
            db.session.add(
                ContactEvent(
                    instance_id=laptop.id,
                    at=NOW - timedelta(hours=hours),
                    via="heartbeat",
                )
            )
        db.session.add(
            CrawlResult(
                instance_id=laptop.id,
                crawled_at=NOW - timedelta(hours=50),
                health="down",
                status=None,
                duration_ms=5,
            )
        )
        db.session.commit()
    html = page(signed_in, instance_path(signed_in, laptop.uuid))
    assert 'class="badge state-overdue"' in html
    assert "(heartbeat)" in html
    assert 'id="uptime-bar"' in html
    assert html.count("<rect") == 30
    assert "30d: " in html


def test_schedule_tags_and_pause_forms(app, signed_in, fleet):
    uuid = fleet["down"].uuid
    path = instance_path(signed_in, uuid)
    signed_in.post(
        f"{path}/schedule",
        data={
            "contact_every": "24",
            "contact_grace": "1,5",
            "csrf_token": csrf_token(signed_in, path),
        },
    )
    signed_in.post(
        f"{path}/tags",
        data={"tags": "clinic, ke  rainy", "csrf_token": csrf_token(signed_in, path)},
    )
    signed_in.post(
        f"{path}/organisation-schedule",
        data={
            "contact_every": "12",
            "contact_grace": "",
            "csrf_token": csrf_token(signed_in, path),
        },
    )
    until = (NOW + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    signed_in.post(
        f"{path}/pause",
        data={
            "until": until,
            "note": "new roof",
            "csrf_token": csrf_token(signed_in, path),
        },
    )
    with app.app_context():
        instance = db.session.scalar(select(Instance).filter_by(uuid=uuid))
        assert (instance.contact_every, instance.contact_grace) == (86400, 5400)
        tags = db.session.scalars(
            select(InstanceTag.tag).filter_by(instance_id=instance.id)
        )
        assert sorted(tags) == ["clinic", "ke", "rainy"]
        default = db.session.get(OrganisationDefault, "Clinics")
        assert (default.contact_every, default.contact_grace) == (43200, None)
        assert db.session.scalar(select(Pause.note)) == "new roof"
    html = page(signed_in, path)
    assert 'class="badge state-paused"' in html
    signed_in.post(f"{path}/resume", data={"csrf_token": csrf_token(signed_in, path)})
    assert 'class="badge state-paused"' not in page(signed_in, path)


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"contact_every": "soon"}, "contact_every"),
        ({"contact_every": "-2"}, "contact_every"),
    ],
)
def test_bad_schedule_input_is_a_message_and_changes_nothing(
    app, signed_in, fleet, form, message
):
    uuid = fleet["up"].uuid
    path = instance_path(signed_in, uuid)
    response = signed_in.post(
        f"{path}/schedule",
        data={**form, "csrf_token": csrf_token(signed_in, path)},
        follow_redirects=True,
    )
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert (
            db.session.scalar(select(Instance.contact_every).filter_by(uuid=uuid))
            is None
        )


def test_a_pause_in_the_past_is_refused(app, signed_in, fleet):
    path = instance_path(signed_in, fleet["up"].uuid)
    response = signed_in.post(
        f"{path}/pause",
        data={"until": "2001-01-01T00:00", "csrf_token": csrf_token(signed_in, path)},
        follow_redirects=True,
    )
    assert "must be in the future" in response.get_data(as_text=True)


def test_live_states_answer_the_rows_asked_for(signed_in, fleet):
    down = str(fleet["down"].id)
    answer = signed_in.get(f"/instances/states.json?number={down}").get_json()
    assert set(answer["rows"]) == {down}
    assert answer["rows"][down]["state"] == "down"
    assert {c["state"]: c["count"] for c in answer["counts"]}["overdue"] == 1


def test_live_states_leave_out_a_disabled_instance(app, signed_in, fleet):
    with app.app_context():
        db.session.get(Instance, fleet["up"].id).enabled = False
        db.session.commit()
    up, down = fleet["up"].id, fleet["down"].id
    answer = signed_in.get(f"/instances/states.json?number={up}&number={down}")
    assert answer.status_code == 200
    assert set(answer.get_json()["rows"]) == {str(down)}


def test_registered_through_the_api_shows_checking_in(client, signed_in):
    client.post("/api/instance/", json=REGISTRATION)
    assert "checking in" in page(signed_in, "/")

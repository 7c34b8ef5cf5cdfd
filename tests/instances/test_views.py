"""Dashboard pages through the test client: sign-in, CSRF, edits, time zone, locale."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from tests.support import Login, csrf_token, instance_path
from tracker.extensions import db
from tracker.instances.models import Instance


def add_instance(app, **fields) -> str:
    with app.app_context():
        instance = Instance(
            url="https://a.example.org",
            contact="C",
            email="c@example.org",
            organisation="O",
            approved=True,
            **fields,
        )
        db.session.add(instance)
        db.session.commit()
        return instance.uuid


@pytest.mark.parametrize(
    "path", ["/", "/statistics", "/batch-operations", "/batch-operations/1.json"]
)
def test_pages_need_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_posts_without_csrf_token_are_refused(app, signed_in):
    uuid = add_instance(app)
    for action in ("delete", "enabled", "crawl", "approve", "edit", "location/clear"):
        response = signed_in.post(
            f"{instance_path(signed_in, uuid)}/{action}", data={"enabled": "no"}
        )
        assert response.status_code == 400, action
    with app.app_context():
        assert db.session.scalar(select(Instance)).enabled is True


def test_edit_validates_like_the_api(app, signed_in):
    uuid = add_instance(app)
    token = csrf_token(signed_in, instance_path(signed_in, uuid))
    form = {
        "csrf_token": token,
        "url": "javascript:alert(1)",
        "contact": "New",
        "email": "c@example.org",
        "organisation": "O",
    }
    page = signed_in.post(
        f"{instance_path(signed_in, uuid)}/edit", data=form, follow_redirects=True
    )
    assert page.status_code == 400
    text = page.get_data(as_text=True)
    assert "must start with http:// or https://" in text
    assert '<p class="flash flash-error" role="status">' in text
    # What was typed is still there to correct.
    assert 'value="javascript:alert(1)"' in text and 'value="New"' in text
    refused = signed_in.post(
        f"{instance_path(signed_in, uuid)}/location",
        data={"csrf_token": token, "latitude": "95", "longitude": "12.5"},
    )
    assert refused.status_code == 400
    assert 'value="12.5"' in refused.get_data(as_text=True)
    form["url"] = "https://b.example.org/"
    signed_in.post(f"{instance_path(signed_in, uuid)}/edit", data=form)
    with app.app_context():
        instance = db.session.scalar(select(Instance))
        assert (instance.url, instance.contact) == ("https://b.example.org", "New")


def test_disable_set_location_and_delete(app, signed_in):
    uuid = add_instance(app)
    token = csrf_token(signed_in, instance_path(signed_in, uuid))
    signed_in.post(
        f"{instance_path(signed_in, uuid)}/enabled",
        data={"csrf_token": token, "enabled": "no"},
    )
    signed_in.post(
        f"{instance_path(signed_in, uuid)}/location",
        data={
            "csrf_token": token,
            "latitude": "-0.1",
            "longitude": "34.75",
            "country_code": "ke",
            "city": "Kisumu",
        },
    )
    with app.app_context():
        instance = db.session.scalar(select(Instance))
        assert instance.enabled is False
        assert (instance.country_name, instance.location_manual) == ("Kenya", True)
    bad = signed_in.post(
        f"{instance_path(signed_in, uuid)}/location",
        data={
            "csrf_token": token,
            "latitude": "-0.1",
            "longitude": "34.75",
            "country_code": "ZZ",
        },
        follow_redirects=True,
    )
    assert "country_code" in bad.get_data(as_text=True)
    signed_in.post(
        f"{instance_path(signed_in, uuid)}/delete", data={"csrf_token": token}
    )
    with app.app_context():
        assert db.session.scalar(select(Instance)) is None


def test_unknown_instance_is_a_404_page(signed_in):
    response = signed_in.get("/instances/nope")
    assert response.status_code == 404
    assert "text/html" in response.content_type


def test_times_are_shown_in_the_configured_time_zone(make_app, user):
    app = make_app(BABEL_DEFAULT_TIMEZONE="Asia/Tokyo")
    uuid = add_instance(app, registered=datetime(2026, 1, 2, 20, 30, tzinfo=UTC))
    client = app.test_client()
    Login(client)()
    page = client.get(instance_path(client, uuid)).get_data(as_text=True)
    assert "3 Jan 2026, 05:30:00" in page


def test_a_second_locale_translates_the_pages(make_app, user):
    app = make_app(BABEL_DEFAULT_LOCALE="fr")
    client = app.test_client()
    assert "Se connecter" in client.get("/login").get_data(as_text=True)
    Login(client)()
    page = client.get("/").get_data(as_text=True)
    assert "Tout collecter" in page
    assert "Crawl all" not in page


def test_the_french_catalogue_is_complete():
    from pathlib import Path

    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parents[2] / "tracker" / "translations"
    with (root / "fr" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalogue = read_po(handle)
    with (root / "messages.pot").open("rb") as handle:
        template = read_po(handle)
    missing = [
        m.id
        for m in catalogue
        if m.id
        and (not m.string or (isinstance(m.string, tuple) and not all(m.string)))
    ]
    assert missing == []
    assert {m.id for m in template if m.id} <= {m.id for m in catalogue if m.id}


def test_a_new_url_from_the_dashboard_needs_approving_again(app, user, make_app):
    strict = make_app(CRAWL_REQUIRE_APPROVAL=True)
    client = strict.test_client()
    Login(client)()
    uuid = add_instance(strict)
    form = {
        "csrf_token": csrf_token(client, instance_path(client, uuid)),
        "url": "https://a.example.org",
        "contact": "New",
        "email": "c@example.org",
        "organisation": "O",
    }
    client.post(f"{instance_path(client, uuid)}/edit", data=form)
    with strict.app_context():
        assert db.session.scalar(select(Instance)).approved is True
    form["url"] = "https://b.example.org"
    client.post(f"{instance_path(client, uuid)}/edit", data=form)
    with strict.app_context():
        instance = db.session.scalar(select(Instance))
        assert (instance.url, instance.approved) == ("https://b.example.org", False)

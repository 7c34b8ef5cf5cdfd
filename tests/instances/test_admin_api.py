"""Admin changes over the API: approval and hand-set locations."""

import pytest

from tests.support import REGISTRATION


@pytest.fixture
def uuid(client):
    return client.post("/api/instance/", json=REGISTRATION).get_json()["uuid"]


def listed(client, auth_headers):
    return client.get("/api/instances", headers=auth_headers).get_json()["items"][0]


def test_registrations_need_approval_only_when_switched_on(make_app, auth_headers):
    app = make_app(CRAWL_REQUIRE_APPROVAL=True)
    client = app.test_client()
    uuid = client.post("/api/instance/", json=REGISTRATION).get_json()["uuid"]
    assert listed(client, auth_headers)["approved"] is False
    refused = client.post(f"/api/instances/{uuid}/crawl", headers=auth_headers)
    assert refused.status_code == 409
    response = client.post(f"/api/instances/{uuid}/approve", headers=auth_headers)
    assert response.status_code == 200
    assert response.get_json()["approved"] is True


def test_without_approval_registrations_are_crawled_but_not_approved(
    client, uuid, auth_headers
):
    # Crawl headers may hold tokens: only an admin's approval sends them.
    assert listed(client, auth_headers)["approved"] is False
    crawl = client.post(f"/api/instances/{uuid}/crawl", headers=auth_headers)
    assert crawl.status_code == 202


def test_set_and_clear_a_location_by_hand(client, uuid, auth_headers):
    location = {
        "latitude": -0.1,
        "longitude": 34.75,
        "country_code": "ke",
        "city": "Kisumu",
    }
    response = client.put(
        f"/api/instances/{uuid}/location", json=location, headers=auth_headers
    )
    assert response.status_code == 200
    stored = response.get_json()["location"]
    assert stored["country_code"] == "KE"
    assert stored["country_name"] == "Kenya"
    assert (stored["city"], stored["latitude"], stored["manual"]) == (
        "Kisumu",
        -0.1,
        True,
    )

    cleared = client.delete(f"/api/instances/{uuid}/location", headers=auth_headers)
    assert cleared.get_json()["location"]["manual"] is False
    assert cleared.get_json()["location"]["country_code"] is None


@pytest.mark.parametrize(
    ("location", "field"),
    [
        ({"latitude": 91, "longitude": 0, "country_code": "KE"}, "latitude"),
        ({"latitude": "0", "longitude": 0, "country_code": "KE"}, "latitude"),
        ({"latitude": 0, "longitude": -181, "country_code": "KE"}, "longitude"),
        ({"latitude": 0, "longitude": 0, "country_code": "XX"}, "country_code"),
        ({"latitude": 0, "longitude": 0}, "country_code"),
        ({"latitude": 0, "longitude": 0, "country_code": "KE", "city": 5}, "city"),
        ({"latitude": 0, "longitude": 0, "country_code": "KE", "alt": 5}, "alt"),
    ],
)
def test_bad_locations_name_the_field(client, uuid, auth_headers, location, field):
    response = client.put(
        f"/api/instances/{uuid}/location", json=location, headers=auth_headers
    )
    assert response.status_code == 400
    assert response.get_json()["field"] == field
    assert listed(client, auth_headers)["location"]["manual"] is False


def test_a_new_url_needs_approving_again(make_app, auth_headers):
    app = make_app(CRAWL_REQUIRE_APPROVAL=True)
    client = app.test_client()
    uuid = client.post("/api/instance/", json=REGISTRATION).get_json()["uuid"]
    client.post(f"/api/instances/{uuid}/approve", headers=auth_headers)
    client.patch(f"/api/instance/{uuid}", json={"contact": "Someone else"})
    assert listed(client, auth_headers)["approved"] is True
    client.patch(f"/api/instance/{uuid}", json={"url": "https://elsewhere.example.org"})
    assert listed(client, auth_headers)["approved"] is False

"""An admin's disable is kept apart from the client's own ``enabled``."""

import pytest

from tests.support import REGISTRATION, csrf_token, instance_path


@pytest.fixture
def uuid(client):
    return client.post("/api/instance/", json=REGISTRATION).get_json()["uuid"]


def detail(client, uuid, auth_headers):
    response = client.get(f"/api/instances/{uuid}", headers=auth_headers)
    assert response.status_code == 200
    return response.get_json()


def admin_patch(client, uuid, auth_headers, body):
    return client.patch(f"/api/instances/{uuid}", json=body, headers=auth_headers)


def states(client, uuid, auth_headers):
    shown = detail(client, uuid, auth_headers)
    return shown["enabled"], shown["client_enabled"], shown["admin_disabled"]


def test_the_clients_enabled_true_never_lifts_an_admins_disable(
    client, uuid, auth_headers
):
    response = admin_patch(client, uuid, auth_headers, {"enabled": False})
    assert response.status_code == 200
    assert response.get_json()["admin_disabled"] is True

    # What the real client sends on every sync.
    synced = client.patch(f"/api/instance/{uuid}", json={"enabled": True})
    assert synced.status_code == 200
    assert synced.get_json()["enabled"] is False
    assert states(client, uuid, auth_headers) == (False, True, True)

    admin_patch(client, uuid, auth_headers, {"enabled": True})
    assert states(client, uuid, auth_headers) == (True, True, False)


def test_an_admins_enable_leaves_a_client_that_switched_itself_off_off(
    client, uuid, auth_headers
):
    client.patch(f"/api/instance/{uuid}", json={"enabled": False})
    admin_patch(client, uuid, auth_headers, {"enabled": True})
    assert states(client, uuid, auth_headers) == (False, False, False)
    client.patch(f"/api/instance/{uuid}", json={"enabled": True})
    assert states(client, uuid, auth_headers) == (True, True, False)


def test_admin_patch_changes_fields_and_a_new_url_needs_approving_again(
    client, uuid, auth_headers
):
    client.post(f"/api/instances/{uuid}/approve", headers=auth_headers)
    response = admin_patch(
        client,
        uuid,
        auth_headers,
        {"url": "https://moved.example.org", "organization": "CERN", "contact": None},
    )
    assert response.status_code == 200
    shown = response.get_json()
    assert (shown["url"], shown["organisation"], shown["contact"]) == (
        "https://moved.example.org",
        "CERN",
        REGISTRATION["contact"],
    )
    assert shown["approved"] is False


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        ({"enabled": "no"}, "Invalid value", "enabled"),
        ({"email": "not-an-address"}, "Invalid value", "email"),
        ({"admin_disabled": True}, "Unexpected data", None),
    ],
)
def test_bad_admin_patch_names_the_field_and_changes_nothing(
    client, uuid, auth_headers, body, error, field
):
    before = detail(client, uuid, auth_headers)
    response = admin_patch(client, uuid, auth_headers, body)
    assert response.status_code == 400
    assert response.get_json()["error"] == error
    if field:
        assert response.get_json()["field"] == field
    assert detail(client, uuid, auth_headers) == before


def test_admin_patch_needs_a_token_and_a_known_uuid(client, uuid, auth_headers):
    assert client.patch(f"/api/instances/{uuid}", json={}).status_code == 401
    unknown = admin_patch(client, "no-such-uuid", auth_headers, {"enabled": False})
    assert unknown.status_code == 404
    assert unknown.is_json


def test_the_dashboards_disable_is_an_admins_disable(client, signed_in, uuid):
    response = client.post(
        f"{instance_path(client, uuid)}/enabled",
        data={
            "enabled": "no",
            "csrf_token": csrf_token(client, instance_path(client, uuid)),
        },
        follow_redirects=True,
    )
    assert "disabled by an admin" in response.get_data(as_text=True)
    client.patch(f"/api/instance/{uuid}", json={"enabled": True})
    page = client.get(instance_path(client, uuid)).get_data(as_text=True)
    assert "disabled by an admin" in page
    listing = client.get("/?enabled=no").get_data(as_text=True)
    assert REGISTRATION["url"] in listing

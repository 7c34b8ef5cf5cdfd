"""The registry API contract, as real clients (Indico's instance tracking) use it."""

from __future__ import annotations

import concurrent.futures
import json
import uuid as uuid_module
from datetime import datetime

import pytest
import requests
from sqlalchemy import func, select

from tests.support import REGISTRATION
from tracker.extensions import db
from tracker.instances.models import Instance

SUMMARY_KEYS = {
    "uuid",
    "enabled",
    "url",
    "contact",
    "email",
    "organisation",
    "registered",
}


def register(client, payload=None, path="/api/instance/"):
    return client.post(path, json=REGISTRATION if payload is None else payload)


def count_instances(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Instance.id)))


# --- the contract ---


@pytest.mark.parametrize(
    "path", ["/api/instance/", "/api/instance", "/instance/", "/instance"]
)
def test_register_answers_201_with_uuid_on_every_spelling(client, path):
    response = register(client, path=path)
    assert response.status_code == 201
    body = response.get_json()
    uuid_module.UUID(body["uuid"])
    assert response.headers["Location"].endswith(f"/api/instance/{body['uuid']}")


def test_register_stores_the_fields_and_get_returns_the_summary(client):
    uuid = register(client).get_json()["uuid"]
    response = client.get(f"/api/instance/{uuid}")
    assert response.status_code == 200
    summary = response.get_json()
    assert set(summary) == SUMMARY_KEYS
    assert summary["uuid"] == uuid
    assert summary["enabled"] is True
    assert summary["url"] == REGISTRATION["url"]
    assert summary["contact"] == "Ada Lovelace"
    assert summary["email"] == "ada@example.org"
    assert summary["organisation"] == "Analytical Engines"
    assert datetime.fromisoformat(summary["registered"]).tzinfo is not None


def test_register_accepts_organization_and_ignores_extra_keys(client):
    payload = {**REGISTRATION, "extra": [1, 2]}
    payload["organization"] = payload.pop("organisation")
    uuid = register(client, payload).get_json()["uuid"]
    assert (
        client.get(f"/instance/{uuid}").get_json()["organisation"]
        == "Analytical Engines"
    )


def test_register_sent_as_text_plain_json_is_still_read(client):
    response = client.post(
        "/api/instance/", data=json.dumps(REGISTRATION), content_type="text/plain"
    )
    assert response.status_code == 201


def test_trailing_slash_of_the_url_is_dropped(client):
    uuid = register(client, {**REGISTRATION, "url": "https://x.example.org/indico/"})
    summary = client.get(f"/api/instance/{uuid.get_json()['uuid']}").get_json()
    assert summary["url"] == "https://x.example.org/indico"


def test_patch_changes_given_fields_and_null_leaves_as_is(client):
    uuid = register(client).get_json()["uuid"]
    response = client.patch(
        f"/api/instance/{uuid}",
        json={"contact": "Charles Babbage", "email": None, "url": None},
    )
    assert response.status_code == 200
    summary = response.get_json()
    assert summary["contact"] == "Charles Babbage"
    assert summary["email"] == "ada@example.org"
    assert summary["url"] == REGISTRATION["url"]


def test_unknown_uuid_answers_json_404(client):
    for method in (client.get, client.patch):
        response = method(
            f"/api/instance/{uuid_module.uuid4()}", json={"enabled": True}
        )
        assert response.status_code == 404
        assert response.is_json
        assert response.get_json()["error"] == "Not found"


def test_real_client_flow(client, app, auth_headers):
    """Register, update, get deleted, re-register on 404, unregister."""
    first = register(client).get_json()["uuid"]
    update = client.patch(f"/api/instance/{first}", json={"organization": "CERN"})
    assert update.get_json()["organisation"] == "CERN"

    assert (
        client.delete(f"/api/instances/{first}", headers=auth_headers).status_code
        == 204
    )
    assert (
        client.patch(f"/api/instance/{first}", json={"contact": "X"}).status_code == 404
    )

    second = register(client).get_json()["uuid"]
    assert second != first
    unregister = client.patch(f"/api/instance/{second}", json={"enabled": False})
    assert unregister.status_code == 200
    assert unregister.get_json()["enabled"] is False
    assert count_instances(app) == 1


# --- bad input: a 4xx naming the field, nothing stored ---

BAD_REGISTRATIONS = [
    ({**REGISTRATION, "url": None}, "url"),
    ({k: v for k, v in REGISTRATION.items() if k != "url"}, "url"),
    ({**REGISTRATION, "url": 42}, "url"),
    ({**REGISTRATION, "url": ""}, "url"),
    ({**REGISTRATION, "url": "ftp://example.org"}, "url"),
    ({**REGISTRATION, "url": "javascript:alert(1)"}, "url"),
    ({**REGISTRATION, "url": "https://"}, "url"),
    ({**REGISTRATION, "url": "https://exa mple.org"}, "url"),
    ({**REGISTRATION, "url": "https://user:pw@example.org"}, "url"),
    ({**REGISTRATION, "url": "https://example.org:99999"}, "url"),
    ({**REGISTRATION, "url": "https://-bad-.example.org"}, "url"),
    ({**REGISTRATION, "url": "https://example.org/?q=1"}, "url"),
    ({**REGISTRATION, "url": "https://example.org/" + "a" * 2000}, "url"),
    ({**REGISTRATION, "contact": ""}, "contact"),
    ({**REGISTRATION, "contact": "   "}, "contact"),
    ({**REGISTRATION, "contact": ["Ada"]}, "contact"),
    ({**REGISTRATION, "contact": "x" * 256}, "contact"),
    ({**REGISTRATION, "contact": "Ada\x00"}, "contact"),
    ({**REGISTRATION, "contact": "Ada\ud800"}, "contact"),
    ({**REGISTRATION, "email": "not-an-email"}, "email"),
    ({**REGISTRATION, "email": "a@b"}, "email"),
    ({**REGISTRATION, "email": "a b@example.org"}, "email"),
    ({**REGISTRATION, "email": 7}, "email"),
    ({**REGISTRATION, "email": "a@" + "x" * 250 + ".org"}, "email"),
    ({k: v for k, v in REGISTRATION.items() if k != "organisation"}, "organisation"),
    ({**REGISTRATION, "organisation": True}, "organisation"),
    ({**REGISTRATION, "organization": "Other"}, "organization"),
]


@pytest.mark.parametrize(("payload", "field"), BAD_REGISTRATIONS)
def test_bad_registration_names_the_field_and_stores_nothing(
    client, app, payload, field
):
    response = register(client, payload)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "Invalid value"
    assert body["field"] == field
    assert field in body["message"]
    assert count_instances(app) == 0


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[1, 2]", b'"text"', b"null", b"\xff\xfe", b"[" * 30000],
)
def test_body_that_is_not_a_json_object_is_400(client, app, raw):
    response = client.post("/api/instance/", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["field"] == "body"
    assert count_instances(app) == 0


def test_oversized_body_is_413_naming_body(client, app):
    payload = {**REGISTRATION, "padding": "x" * 100_000}
    response = register(client, payload)
    assert response.status_code == 413
    assert response.get_json()["field"] == "body"
    assert count_instances(app) == 0


def test_oversized_chunked_body_is_refused_over_real_http(live_server, app):
    def chunks():
        yield json.dumps(REGISTRATION)[:-1].encode()
        for _ in range(200):
            yield b" " * 1024
        yield b"}"

    response = requests.post(f"{live_server}/api/instance/", data=chunks(), timeout=10)
    assert response.status_code == 413
    assert count_instances(app) == 0


BAD_UPDATES = [
    ({"enabled": "no"}, "Invalid value", "enabled"),
    ({"enabled": 0}, "Invalid value", "enabled"),
    ({"url": "mailto:a@example.org"}, "Invalid value", "url"),
    ({"url": ""}, "Invalid value", "url"),
    ({"contact": ""}, "Invalid value", "contact"),
    ({"email": "nope"}, "Invalid value", "email"),
    ({"organisation": ""}, "Invalid value", "organisation"),
    ({"organization": 3}, "Invalid value", "organization"),
    ({"contact": "B", "colour": "red"}, "Unexpected data", "colour"),
    ({"uuid": "x"}, "Unexpected data", "uuid"),
]


@pytest.mark.parametrize(("payload", "error", "field"), BAD_UPDATES)
def test_bad_update_names_the_field_and_changes_nothing(client, payload, error, field):
    uuid = register(client).get_json()["uuid"]
    response = client.patch(f"/api/instance/{uuid}", json=payload)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == error
    assert body["field"] == field
    summary = client.get(f"/api/instance/{uuid}").get_json()
    assert summary["contact"] == REGISTRATION["contact"]
    assert summary["enabled"] is True


def test_wrong_method_is_json_405(client):
    response = client.delete("/api/instance/")
    assert response.status_code == 405
    assert response.is_json


# --- admin endpoints ---


def test_admin_endpoints_need_a_valid_token(client):
    assert client.get("/api/instances").status_code == 401
    bad = {"Authorization": "Bearer trk_nonsense"}
    response = client.get("/api/instances", headers=bad)
    assert response.status_code == 401
    assert response.get_json()["error"] == "Unauthorized"
    assert client.delete(f"/api/instances/{uuid_module.uuid4()}").status_code == 401


def test_a_revoked_token_stops_working(client, app, auth_headers):
    from tracker.auth.models import ApiToken
    from tracker.auth.tokens import revoke_token

    assert client.get("/api/instances", headers=auth_headers).status_code == 200
    with app.app_context():
        revoke_token(db.session.scalar(select(ApiToken)))
        db.session.commit()
    assert client.get("/api/instances", headers=auth_headers).status_code == 401


def test_list_filters_and_paginates(client, auth_headers):
    for index in range(5):
        register(
            client,
            {
                **REGISTRATION,
                "organisation": "Even" if index % 2 == 0 else "Odd",
                "url": f"https://host{index}.example.org",
            },
        )
    odd = client.get("/api/instances?organisation=Odd", headers=auth_headers).get_json()
    assert odd["total"] == 2
    assert {item["organisation"] for item in odd["items"]} == {"Odd"}

    page = client.get(
        "/api/instances?per_page=2&page=3", headers=auth_headers
    ).get_json()
    assert (page["total"], page["pages"], page["page"], len(page["items"])) == (
        5,
        3,
        3,
        1,
    )

    found = client.get("/api/instances?q=HOST3", headers=auth_headers).get_json()
    assert [item["url"] for item in found["items"]] == ["https://host3.example.org"]

    wildcard = client.get("/api/instances?q=%25", headers=auth_headers).get_json()
    assert wildcard["total"] == 0


def test_list_filters_on_enabled(client, auth_headers):
    keep = register(client).get_json()["uuid"]
    off = register(client).get_json()["uuid"]
    client.patch(f"/api/instance/{off}", json={"enabled": False})
    listed = client.get("/api/instances?enabled=true", headers=auth_headers).get_json()
    assert [item["uuid"] for item in listed["items"]] == [keep]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page=0", "page"),
        ("page=x", "page"),
        ("page=%C2%B2", "page"),
        ("page=99999999999999999999", "page"),
        ("per_page=100000", "per_page"),
        ("enabled=maybe", "enabled"),
    ],
)
def test_list_rejects_bad_query_arguments(client, auth_headers, query, field):
    response = client.get(f"/api/instances?{query}", headers=auth_headers)
    assert response.status_code == 400
    assert response.get_json()["field"] == field


# --- concurrency, over real HTTP ---


def test_fifty_concurrent_registrations_make_fifty_instances(live_server, app):
    app.config["API_REGISTRATION_RATE_LIMIT"] = None  # one client, fifty sites

    def one(index: int) -> str:
        payload = {**REGISTRATION, "url": f"https://site{index}.example.org"}
        response = requests.post(
            f"{live_server}/api/instance/", json=payload, timeout=30
        )
        assert response.status_code == 201, response.text
        return response.json()["uuid"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        uuids = list(pool.map(one, range(50)))
    assert len(set(uuids)) == 50
    assert count_instances(app) == 50


def test_ids_beyond_what_the_database_holds_are_404(client, auth_headers):
    response = client.get("/api/batch-operations/99999999999999", headers=auth_headers)
    assert response.status_code == 404
    assert response.is_json


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/instances?q=a%00b", "q"),
        ("/api/instances?organisation=%00", "organisation"),
        ("/?q=%00", "q"),
    ],
)
def test_a_nul_character_in_a_query_argument_is_400_naming_it(
    client, signed_in, auth_headers, path, field
):
    response = client.get(path, headers=auth_headers if "api" in path else None)
    assert response.status_code == 400
    if response.is_json:
        assert response.get_json()["field"] == field
    else:
        assert field in response.get_data(as_text=True)


def test_an_upper_case_uuid_finds_the_instance(client):
    uuid = register(client).get_json()["uuid"]
    response = client.get(f"/api/instance/{uuid.upper()}")
    assert response.status_code == 200
    assert response.get_json()["uuid"] == uuid

"""A registration retried with the same Idempotency-Key answers the same uuid."""

from __future__ import annotations

import concurrent.futures
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select, update

from tests.support import REGISTRATION
from tracker.db_types import utcnow
from tracker.extensions import db
from tracker.housekeeping import housekeeping
from tracker.instances.models import Instance, RegistrationKey


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def register(client, key, payload=REGISTRATION):
    return client.post("/api/instance/", json=payload, headers={"Idempotency-Key": key})


def test_a_retry_with_the_same_key_answers_the_same_instance(client, app):
    first = register(client, "3f2c-retry-1")
    again = register(client, "3f2c-retry-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.get_json()["uuid"] == first.get_json()["uuid"]
    assert again.headers["Location"] == first.headers["Location"]
    assert count(app, Instance) == 1
    # Without a key, or with another, each POST is a registration of its own.
    assert client.post("/api/instance/", json=REGISTRATION).status_code == 201
    assert (
        register(client, "3f2c-retry-2").get_json()["uuid"]
        != (first.get_json()["uuid"])
    )
    assert count(app, Instance) == 3


def test_the_american_spelling_is_the_same_registration(client, app):
    british = register(client, "spelling")
    american_payload = {**REGISTRATION, "organization": REGISTRATION["organisation"]}
    del american_payload["organisation"]
    american = register(client, "spelling", american_payload)
    assert american.get_json()["uuid"] == british.get_json()["uuid"]


def test_the_same_key_for_another_registration_is_422_and_stores_nothing(client, app):
    register(client, "reused")
    other = register(client, "reused", {**REGISTRATION, "url": "https://b.example"})
    assert other.status_code == 422
    assert other.get_json()["field"] == "Idempotency-Key"
    assert count(app, Instance) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_a_malformed_key_is_400_naming_the_header(client, app, key):
    response = client.post(
        "/api/instance/",
        json=REGISTRATION,
        headers=[("Idempotency-Key", key.encode("utf-8").decode("latin-1"))],
    )
    assert response.status_code == 400
    assert response.get_json()["field"] == "Idempotency-Key"
    assert count(app, Instance) == 0


def test_a_key_is_forgotten_after_a_day(client, app):
    first = register(client, "a-day-old").get_json()["uuid"]
    with app.app_context():
        db.session.execute(
            update(RegistrationKey).values(created=utcnow() - timedelta(days=2))
        )
        db.session.commit()
    assert register(client, "a-day-old").get_json()["uuid"] != first
    with app.app_context():
        db.session.execute(
            update(RegistrationKey).values(created=utcnow() - timedelta(days=2))
        )
        db.session.commit()
        housekeeping()
    assert count(app, RegistrationKey) == 0
    assert count(app, Instance) == 2


def test_a_deleted_instance_forgets_its_key(client, app, auth_headers):
    uuid = register(client, "gone").get_json()["uuid"]
    client.delete(f"/api/instances/{uuid}", headers=auth_headers)
    again = register(client, "gone")
    assert again.status_code == 201
    assert again.get_json()["uuid"] != uuid


def test_concurrent_retries_with_one_key_make_one_instance(live_server, app):
    app.config["API_REGISTRATION_RATE_LIMIT"] = None

    def one(_: int) -> str:
        response = requests.post(
            f"{live_server}/api/instance/",
            json=REGISTRATION,
            headers={"Idempotency-Key": "raced"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return response.json()["uuid"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        uuids = set(pool.map(one, range(16)))
    assert len(uuids) == 1
    assert count(app, Instance) == 1

"""Registration is rate-limited per client address, with Flask-Limiter."""

from __future__ import annotations

import pytest

from tests.services import start_redis
from tests.support import REGISTRATION

SPELLINGS = ("/api/instance/", "/api/instance", "/instance/", "/instance")


def limited_app(make_app, **settings):
    """An app on the test database (schema in place) allowing 3 a minute."""
    return make_app(API_REGISTRATION_RATE_LIMIT="3/minute", **settings)


def test_past_the_limit_registration_answers_429_with_retry_after(make_app):
    client = limited_app(make_app).test_client()
    statuses = [client.post(path, json=REGISTRATION).status_code for path in SPELLINGS]
    # Every spelling of the endpoint draws on the same allowance.
    assert statuses == [201, 201, 201, 429]
    refused = client.post("/api/instance/", json=REGISTRATION)
    assert refused.status_code == 429
    assert refused.get_json()["error"] == "Too Many Requests"
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    # Reading and updating are not registrations.
    assert client.get("/api/instance/unknown").status_code == 404


@pytest.mark.parametrize("off", [None, "off"])
def test_no_limit_when_switched_off(make_app, off):
    client = make_app(API_REGISTRATION_RATE_LIMIT=off).test_client()
    statuses = {
        client.post("/api/instance/", json=REGISTRATION).status_code for _ in range(40)
    }
    assert statuses == {201}


def test_a_forwarded_address_counts_only_behind_a_trusted_proxy(make_app):
    def statuses(app):
        client = app.test_client()
        return [
            client.post(
                "/api/instance/",
                json=REGISTRATION,
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
            ).status_code
            for n in range(5)
        ]

    # Without a trusted proxy the header is the client's own claim: ignored.
    assert statuses(limited_app(make_app)) == [201, 201, 201, 429, 429]
    # Behind one proxy, each forwarded address has its own allowance.
    assert statuses(limited_app(make_app, TRUSTED_PROXIES=1)) == [201] * 5


def test_web_processes_count_together_through_redis(make_app):
    redis = start_redis()
    try:
        first = limited_app(make_app, CELERY_BROKER_URL=redis.url)
        assert first.config["RATELIMIT_STORAGE_URI"] == redis.url
        client = first.test_client()
        assert [
            client.post(p, json=REGISTRATION).status_code for p in SPELLINGS[:2]
        ] == [
            201,
            201,
        ]
        # Another web process: a second app on the same Redis.
        second = limited_app(make_app, CELERY_BROKER_URL=redis.url).test_client()
        assert second.post("/instance", json=REGISTRATION).status_code == 201
        assert second.post("/instance", json=REGISTRATION).status_code == 429
    finally:
        redis.stop()


def test_with_redis_gone_registration_still_works_counted_in_memory(make_app):
    redis = start_redis()
    app = limited_app(make_app, CELERY_BROKER_URL=redis.url)
    client = app.test_client()
    assert client.post("/api/instance/", json=REGISTRATION).status_code == 201
    redis.stop()
    statuses = [
        client.post("/api/instance/", json=REGISTRATION).status_code for _ in range(4)
    ]
    # Still registering, and still limited (in this process's memory): no 500.
    assert statuses[0] == 201
    assert set(statuses) == {201, 429}


@pytest.mark.parametrize("value", ["lots", "30 per fortnight", 30])
def test_a_malformed_limit_is_refused_at_start_up(make_app, value):
    from tracker.settings import SettingsError

    with pytest.raises(SettingsError, match=r"^API_REGISTRATION_RATE_LIMIT = "):
        make_app(API_REGISTRATION_RATE_LIMIT=value)

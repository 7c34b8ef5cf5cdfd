"""The web tier while PostgreSQL restarts or is down: no stale connection fails
a request, and an unreachable database is a 503 to retry, not a 500."""

from __future__ import annotations

import pytest

from tests.services import start_postgres
from tracker import create_app
from tracker.extensions import db

REGISTRATION = {
    "url": "https://a.example.org",
    "contact": "C",
    "email": "c@example.org",
    "organisation": "O",
}


@pytest.fixture
def own_postgres():
    """A cluster of this test's own, to restart and stop."""
    server = start_postgres()
    server.admin("CREATE DATABASE tracker")
    yield server
    server.stop()


@pytest.fixture
def pg_app(own_postgres, tmp_path):
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": own_postgres.url("tracker"), "TESTING": True},
        instance_path=tmp_path / "instance",
        environ={},
    )
    with app.app_context():
        from tracker.models import import_all_models

        import_all_models()
        db.create_all()
    yield app
    with app.app_context():
        db.engine.dispose()


def test_no_request_fails_after_a_database_restart(pg_app, own_postgres):
    client = pg_app.test_client()
    uuid = client.post("/api/instance/", json=REGISTRATION).get_json()["uuid"]
    for _ in range(4):  # fill the pool with connections that the restart kills
        assert client.get(f"/api/instance/{uuid}").status_code == 200
    own_postgres.pg_ctl("restart", "-m", "fast")
    statuses = [client.get(f"/api/instance/{uuid}").status_code for _ in range(8)]
    assert statuses == [200] * 8


def test_an_unreachable_database_is_a_503_to_retry(pg_app, own_postgres):
    from tracker.auth.models import User
    from tracker.auth.tokens import issue_token

    with pg_app.app_context():
        user = User(username="ada", password_hash="-", role="admin")
        db.session.add(user)
        token = issue_token(db.session, user, "tests")
        db.session.commit()
    client = pg_app.test_client()
    assert client.post("/api/instance/", json=REGISTRATION).status_code == 201
    own_postgres.pg_ctl("stop", "-m", "fast")
    answer = client.post("/api/instance/", json=REGISTRATION)
    assert answer.status_code == 503
    assert answer.get_json()["error"] == "Service unavailable"
    assert int(answer.headers["Retry-After"]) > 0
    # A page that must ask the database who is signed in.
    page = client.get("/", headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 503
    assert "Retry-After" in page.headers
    assert "database cannot be reached" in page.get_data(as_text=True)
    own_postgres.pg_ctl("start", "-o", own_postgres.options)
    assert client.post("/api/instance/", json=REGISTRATION).status_code == 201

"""Sign-in and sign-out: hashed passwords, CSRF, safe redirects."""

from __future__ import annotations

import re

import pytest

from tracker.auth.views import safe_next


def test_pages_need_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/")


def test_sign_in_and_out(client, user, login):
    response = login()
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert "ada" in home.get_data(as_text=True)

    token = re.search(r'name="csrf_token" value="([^"]+)"', home.get_data(as_text=True))
    response = client.post("/logout", data={"csrf_token": token.group(1)})
    assert response.status_code == 302
    assert client.get("/").status_code == 302


def test_wrong_password_is_refused(client, user, login):
    response = login(password="wrong")
    assert response.status_code == 200
    assert "Wrong user name or password" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_password_is_stored_hashed(app, user):
    from tracker.auth.models import User
    from tracker.extensions import db

    with app.app_context():
        stored = db.session.get(User, user).password_hash
    assert "correct horse" not in stored
    assert stored.startswith(("scrypt:", "pbkdf2:"))


def test_passwords_are_hashed_with_the_configured_method(app):
    """scrypt unless PASSWORD_HASH_METHOD names another method."""
    from tracker.auth.models import User
    from tracker.settings import CORE_SETTINGS

    default = {s.name: s.default for s in CORE_SETTINGS}["PASSWORD_HASH_METHOD"]
    user = User(username="grace")
    methods = ((default, "scrypt:"), ("pbkdf2:sha256:1", "pbkdf2:sha256:1$"))
    with app.app_context():
        for method, prefix in methods:
            app.config["PASSWORD_HASH_METHOD"] = method
            user.set_password("hopper")
            assert user.password_hash.startswith(prefix)
            assert user.check_password("hopper") and not user.check_password("grace")


def test_sign_in_without_csrf_token_is_refused(client, user):
    response = client.post(
        "/login", data={"username": "ada", "password": "correct horse"}
    )
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_next_is_followed_when_local(client, user, login):
    assert login(next_path="/api/openapi.json").headers["Location"] == (
        "/api/openapi.json"
    )


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
        "",
        None,
        "relative",
        "/ok\r\nX: y",
    ],
)
def test_unsafe_next_is_ignored(target):
    assert safe_next(target) is None


def test_external_next_redirects_home(client, user, login):
    assert login(next_path="https://evil.example").headers["Location"] == "/"


def test_bearer_token_never_leaves_a_signed_in_session(client, auth_headers):
    assert client.get("/", headers=auth_headers).status_code == 200
    # The same cookie jar without the token is not signed in.
    assert client.get("/").status_code == 302


def test_a_session_cookie_never_signs_in_to_the_api(client, user, login):
    login()
    assert client.get("/").status_code == 200
    response = client.get("/api/instances")
    assert response.status_code == 401
    assert response.get_json()["error"] == "Unauthorized"


def test_pages_credit_the_geolocation_data(client):
    assert "GeoLite2 data created by MaxMind" in client.get("/login").get_data(
        as_text=True
    )

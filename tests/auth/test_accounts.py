"""Accounts: throttled sign-in, the same work for unknown users, server-side
sessions that end on sign-out, and changing one's own password."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.support import PASSWORD, USERNAME, Login, csrf_token

NEW_PASSWORD = "a much longer passphrase"


def sign_in(client, username=USERNAME, password=PASSWORD, address=None):
    """Post the sign-in form, from ``address`` (behind a trusted proxy)."""
    headers = {"X-Forwarded-For": address} if address else {}
    token = csrf_token(client, "/login")
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        headers=headers,
    )


def test_ten_failures_for_a_user_name_then_429_from_any_address(make_app, user):
    app = make_app(TRUSTED_PROXIES=1)
    client = app.test_client()
    statuses = [
        sign_in(client, password="wrong", address=f"203.0.113.{n}").status_code
        for n in range(10)
    ]
    assert statuses == [200] * 10
    refused = sign_in(client, address="198.51.100.7")  # the right password, too
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 60
    # Another user name from a fresh address is not held up.
    assert sign_in(client, "grace", "wrong", address="198.51.100.8").status_code == 200


def test_ten_failures_from_an_address_then_429_for_any_user_name(make_app, user):
    client = make_app().test_client()
    statuses = [sign_in(client, f"guess{n}", "wrong").status_code for n in range(10)]
    assert statuses == [200] * 10
    assert sign_in(client).status_code == 429
    assert client.get("/login").status_code == 200  # the page itself still shows


def test_successful_sign_ins_do_not_count(make_app, user):
    app = make_app(LOGIN_RATE_LIMIT="2 per 15 minutes")
    for _ in range(5):
        assert sign_in(app.test_client()).status_code == 302


def test_the_limit_is_a_setting_and_can_be_off(make_app, user):
    client = make_app(LOGIN_RATE_LIMIT=None).test_client()
    assert {sign_in(client, password="wrong").status_code for _ in range(15)} == {200}


def test_an_unknown_user_costs_a_hash_check_like_a_known_one(
    app, client, user, monkeypatch
):
    """The timing of a sign-in does not tell which user names exist: both
    check one password hash made by the configured method."""
    import tracker.auth.accounts
    import tracker.auth.models

    checked = []
    for module in (tracker.auth.accounts, tracker.auth.models):
        real = module.check_password_hash

        def spy(pwhash, password, real=real):
            checked.append(pwhash.split("$", 1)[0])
            return real(pwhash, password)

        monkeypatch.setattr(module, "check_password_hash", spy)
    sign_in(client, USERNAME, "wrong")
    sign_in(client, "nobody-by-this-name", "wrong")
    method = app.config["PASSWORD_HASH_METHOD"]
    assert checked == [method, method]


def test_a_session_cookie_copied_before_sign_out_no_longer_works(app, client, user):
    assert sign_in(client).status_code == 302
    copied = client.get_cookie("session").value
    assert Login(client).logout().status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", copied)
    response = thief.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_sessions_are_separate_and_kept_on_the_server(app, db, user):
    from tracker.auth.models import UserSession

    first, second = app.test_client(), app.test_client()
    sign_in(first)
    sign_in(second)
    stored = db.scalar(select(UserSession.key_hash))
    assert db.count(UserSession) == 2
    assert stored not in first.get_cookie("session").value  # a digest only
    Login(first).logout()
    assert db.count(UserSession) == 1
    assert first.get("/").status_code == 302
    assert second.get("/").status_code == 200


def test_a_session_older_than_login_session_days_ends(make_app, db, user):
    from datetime import timedelta

    from tracker.auth.models import UserSession
    from tracker.housekeeping import STEPS_KEY

    app = make_app(LOGIN_SESSION_DAYS=1)
    client = app.test_client()
    sign_in(client)
    with db.session() as session:
        row = session.scalar(select(UserSession))
        row.created -= timedelta(days=1, minutes=1)
        session.commit()
    assert client.get("/").status_code == 302
    prune = app.extensions[STEPS_KEY]["pruned_sessions"]
    with db.session() as session:
        assert prune(session, app.config) == 1
        session.commit()
    assert db.count(UserSession) == 0


def change_password(client, current, new, again=None):
    token = csrf_token(client, "/account")
    return client.post(
        "/account/password",
        data={
            "current_password": current,
            "new_password": new,
            "confirm_password": new if again is None else again,
            "csrf_token": token,
        },
    )


def test_change_ones_password_and_the_other_sessions_end(app, db, user):
    from tracker.auth.models import User

    here, elsewhere = app.test_client(), app.test_client()
    sign_in(here)
    sign_in(elsewhere)
    page = here.get("/account")
    assert page.status_code == 200
    assert "Change password" in page.get_data(as_text=True)
    response = change_password(here, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 302
    assert here.get("/").status_code == 200
    assert elsewhere.get("/").status_code == 302
    with db.session() as session:
        stored = session.get(User, user)
        assert stored.check_password(NEW_PASSWORD)
        assert not stored.check_password(PASSWORD)


@pytest.mark.parametrize(
    ("current", "new", "again", "text"),
    [
        ("wrong password", NEW_PASSWORD, None, "The current password is wrong."),
        (PASSWORD, "short-11chr", None, "at least 12 characters"),
        (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!", "The two new passwords differ."),
        (PASSWORD, "x" * 501, None, "Field cannot be longer than 500"),
    ],
)
def test_a_refused_password_change_changes_nothing(
    signed_in, db, user, current, new, again, text
):
    from tracker.auth.models import User

    response = change_password(signed_in, current, new, again)
    assert response.status_code == 400
    assert text in response.get_data(as_text=True)
    with db.session() as session:
        assert session.get(User, user).check_password(PASSWORD)
    assert signed_in.get("/").status_code == 200


def test_the_account_page_needs_sign_in(client):
    assert client.get("/account").status_code == 302
    assert client.post("/account/password").status_code in (302, 400)


def test_web_processes_count_failures_together_through_redis(make_app, user):
    from tests.services import start_redis

    redis = start_redis()
    try:
        settings = {"CELERY_BROKER_URL": redis.url, "LOGIN_RATE_LIMIT": "3/minute"}
        first = make_app(**settings).test_client()
        assert [sign_in(first, password="wrong").status_code for _ in range(2)] == [
            200,
            200,
        ]
        # Another web process: a second app on the same Redis.
        second = make_app(**settings).test_client()
        assert sign_in(second, password="wrong").status_code == 200
        assert sign_in(second).status_code == 429
    finally:
        redis.stop()

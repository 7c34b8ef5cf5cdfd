"""Single sign-on with OpenID Connect, against a real provider on loopback."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from tests.openid_provider import (
    at_provider,
    running_provider,
    sso_settings,
    sso_sign_in,
    start_sso,
)
from tests.support import PASSWORD, USERNAME, Database, Login
from tracker.audit.models import AuditEvent
from tracker.auth.models import User, UserSession


@pytest.fixture
def provider():
    with running_provider() as running:
        yield running


@pytest.fixture
def make_sso_app(make_app, provider):
    def make(**extra):
        return make_app(**sso_settings(provider, **extra))

    return make


@pytest.fixture
def sso_app(make_sso_app):
    return make_sso_app()


@pytest.fixture
def sso_client(sso_app):
    return sso_app.test_client()


@pytest.fixture
def sso_db(sso_app):
    return Database(sso_app)


def users(database: Database) -> list[tuple]:
    with database.session() as session:
        return [
            (u.username, u.role, u.supervisor, u.oidc_subject)
            for u in session.scalars(select(User).order_by(User.id))
        ]


def signed_in(client) -> bool:
    return client.get("/").status_code == 200


def test_sign_in_creates_the_user_with_the_mapped_role(provider, sso_client, sso_db):
    provider.claims["groups"] = ["staff", "operations", "visitors"]
    answer = sso_sign_in(sso_client, next_path="/batch-operations")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/batch-operations"
    assert users(sso_db) == [("grace", "operator", False, "248289761001")]
    assert sso_db.count(UserSession) == 1
    assert signed_in(sso_client)
    # The authorization code flow with PKCE (S256) and a nonce, the client
    # authenticated by its secret.
    (asked,) = provider.authorizations
    assert asked["code_challenge_method"] == "S256"
    assert asked["nonce"] and asked["state"]
    assert set(asked["scope"].split()) == {"openid", "profile", "email"}
    assert asked["redirect_uri"] == "http://localhost/login/oidc/callback"
    (token_request,) = provider.token_requests
    assert token_request["code_verifier"]
    with sso_db.session() as session:
        event = session.scalar(
            select(AuditEvent).where(
                AuditEvent.target_type == "User", AuditEvent.action == "create"
            )
        )
        assert (event.actor, event.via) == ("grace", "sso")
        assert event.changes["role"] == "operator"
        assert event.changes["oidc_subject"] == "248289761001"


def test_the_page_shows_the_button_and_signs_out_as_usual(provider, sso_client):
    page = sso_client.get("/login?next=/batch-operations").get_data(as_text=True)
    assert "Sign in with Test ID" in page
    assert 'href="/login/oidc?next=/batch-operations"' in page
    assert 'name="password"' in page  # passwords too, by default
    sso_sign_in(sso_client)
    account = sso_client.get("/account").get_data(as_text=True)
    assert "You sign in with Test ID and have no password here." in account
    assert 'name="current_password"' not in account
    Login(sso_client).logout()
    assert not signed_in(sso_client)


def test_a_changed_claim_changes_the_role_at_the_next_sign_in(
    provider, sso_client, sso_db
):
    provider.claims["groups"] = ["tracker-admins", "staff"]
    sso_sign_in(sso_client)
    assert users(sso_db) == [("grace", "admin", False, "248289761001")]
    # Taken away at the provider, taken away here: even from the last admin.
    Login(sso_client).logout()
    provider.claims["groups"] = "field-supervisors"
    sso_sign_in(sso_client)
    assert users(sso_db) == [("grace", "operator", True, "248289761001")]
    Login(sso_client).logout()
    provider.claims["groups"] = ["staff"]
    sso_sign_in(sso_client)
    assert users(sso_db) == [("grace", "viewer", False, "248289761001")]
    assert sso_client.get("/users").status_code == 403
    provider.claims["groups"] = ["tracker-admins"]
    Login(sso_client).logout()
    sso_sign_in(sso_client)
    page = sso_client.get("/users").get_data(as_text=True)
    assert "Signs in with Test ID; the role is set again at each sign-in." in page
    with sso_db.session() as session:
        changes = [
            event.changes["role"]
            for event in session.scalars(
                select(AuditEvent)
                .where(AuditEvent.target_type == "User", AuditEvent.action == "update")
                .order_by(AuditEvent.id)
            )
            if "role" in event.changes
        ]
    assert changes == [
        ["admin", "operator"],
        ["operator", "viewer"],
        ["viewer", "admin"],
    ]


def test_a_role_claim_in_userinfo_alone_counts(provider, sso_client, sso_db):
    provider.claims["groups"] = ["operations"]
    provider.userinfo_only = ("groups", "preferred_username")
    sso_sign_in(sso_client)
    assert users(sso_db) == [("grace", "operator", False, "248289761001")]


def test_a_nested_role_claim_is_read_by_its_dotted_path(provider, make_sso_app):
    app = make_sso_app(OIDC_ROLE_CLAIM="realm_access.roles")
    provider.claims["realm_access"] = {"roles": ["tracker-admins"]}
    sso_sign_in(app.test_client())
    assert users(Database(app)) == [("grace", "admin", False, "248289761001")]


def test_no_mapped_value_and_no_default_role_is_refused(provider, sso_client, sso_db):
    provider.claims["groups"] = ["visitors"]
    answer = sso_sign_in(sso_client)
    assert answer.status_code == 403
    page = answer.get_data(as_text=True)
    assert "Your Test ID account gives you no role here." in page
    assert users(sso_db) == []
    assert not signed_in(sso_client)


def test_a_default_role_lets_in_users_with_no_mapped_value(provider, make_sso_app):
    app = make_sso_app(OIDC_DEFAULT_ROLE="viewer")
    provider.claims.pop("groups")
    assert sso_sign_in(app.test_client()).status_code == 302
    assert users(Database(app)) == [("grace", "viewer", False, "248289761001")]


def test_a_user_whose_values_are_all_taken_away_is_refused_and_signed_out(
    provider, sso_app, sso_db
):
    first, second = sso_app.test_client(), sso_app.test_client()
    sso_sign_in(first)
    provider.claims["groups"] = []
    assert sso_sign_in(second).status_code == 403
    assert sso_db.count(UserSession) == 0
    assert not signed_in(first)


def test_a_disabled_user_is_refused(provider, sso_client, sso_db):
    sso_sign_in(sso_client)
    Login(sso_client).logout()
    with sso_db.session() as session:
        session.scalar(select(User)).active = False
        session.commit()
    answer = sso_sign_in(sso_client)
    assert answer.status_code == 403
    assert "This account is disabled." in answer.get_data(as_text=True)
    assert sso_db.count(UserSession) == 0
    assert not signed_in(sso_client)


def test_a_local_user_of_the_same_name_is_left_alone(provider, sso_client, sso_db):
    with sso_db.session() as session:
        local = User(username="grace", role="viewer")
        local.set_password(PASSWORD)
        session.add(local)
        session.commit()
    provider.claims["groups"] = ["tracker-admins"]
    sso_sign_in(sso_client)
    assert users(sso_db) == [
        ("grace", "viewer", False, None),
        ("grace-2", "admin", False, "248289761001"),
    ]
    # Known by the subject from then on, not by the name.
    Login(sso_client).logout()
    provider.claims["preferred_username"] = "grace-hopper"
    sso_sign_in(sso_client)
    assert [name for name, *_ in users(sso_db)] == ["grace", "grace-2"]


def test_a_name_is_made_of_the_email_when_the_provider_has_no_user_name(
    provider, sso_client, sso_db
):
    provider.claims.pop("preferred_username")
    provider.claims["email"] = "Grace Hopper@example.org"
    sso_sign_in(sso_client)
    assert users(sso_db)[0][0] == "Grace-Hopper@example.org"


@pytest.mark.parametrize(
    ("misbehaviour", "reason", "logged"),
    [
        ({"forge": True}, "bad_signature", "bad_signature"),
        (
            {"id_token_overrides": {"exp": int(time.time()) - 3600}},
            "expired_token",
            "expired",
        ),
        (
            {"id_token_overrides": {"nonce": "another nonce"}},
            "invalid_claim",
            "'nonce'",
        ),
        (
            {"id_token_overrides": {"aud": "another-client"}},
            "invalid_claim",
            "'aud'",
        ),
        (
            {"id_token_overrides": {"iss": "https://id.example.org"}},
            "invalid_claim",
            "'iss'",
        ),
        ({"deny": "access_denied"}, "access_denied", "access_denied"),
    ],
    ids=["forged", "expired", "wrong-nonce", "wrong-audience", "wrong-iss", "denied"],
)
def test_an_answer_that_cannot_be_trusted_is_refused(
    provider, sso_client, sso_db, caplog, misbehaviour, reason, logged
):
    for name, value in misbehaviour.items():
        setattr(provider, name, value)
    answer = sso_sign_in(sso_client)
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    assert f"Signing in with Test ID did not succeed ({reason})" in page
    assert logged in caplog.text
    assert users(sso_db) == []
    assert sso_db.count(UserSession) == 0
    assert not signed_in(sso_client)


def test_a_callback_with_another_state_or_in_another_browser_is_refused(
    provider, sso_app, sso_db
):
    client = sso_app.test_client()
    callback = at_provider(start_sso(client).headers["Location"])
    query = parse_qs(urlsplit(callback).query)
    forged = f"/login/oidc/callback?code={query['code'][0]}&state=guessed"
    assert client.get(forged).status_code == 400
    # The code is good, but this browser never started a sign-in.
    assert sso_app.test_client().get(callback).status_code == 400
    assert users(sso_db) == []
    assert sso_db.count(UserSession) == 0
    assert provider.token_requests == []  # the code never left the tracker


def test_a_sign_in_over_another_ends_the_first_session(
    provider, sso_client, sso_db, user
):
    callback = at_provider(start_sso(sso_client).headers["Location"])
    Login(sso_client)()  # signed in with a password meanwhile
    assert sso_db.count(UserSession) == 1
    assert sso_client.get(callback).status_code == 302
    with sso_db.session() as session:
        (only,) = session.scalars(select(UserSession))
        assert only.user.username == "grace"


def test_next_must_stay_on_the_site(provider, sso_client):
    answer = sso_sign_in(sso_client, next_path="//evil.example/x")
    assert answer.headers["Location"] == "/"


def test_a_public_client_signs_in_with_pkce_alone(provider, make_sso_app):
    provider.client_secret = None
    app = make_sso_app(OIDC_CLIENT_SECRET=None)
    assert sso_sign_in(app.test_client()).status_code == 302
    (token_request,) = provider.token_requests
    assert "client_secret" not in token_request
    assert token_request["client_id"] == "tracker"


def test_a_provider_that_cannot_be_reached_is_told(make_app, provider):
    with running_provider() as gone:
        issuer = gone.issuer
    app = make_app(**sso_settings(provider, OIDC_ISSUER=issuer, OIDC_TIMEOUT=2))
    answer = start_sso(app.test_client())
    assert answer.status_code == 502
    assert "Test ID cannot be reached." in answer.get_data(as_text=True)


def test_passwords_can_be_switched_off(provider, make_sso_app, user):
    # No form to take a CSRF token from: the check is off to post one anyway.
    app = make_sso_app(OIDC_ALLOW_PASSWORDS=False, WTF_CSRF_ENABLED=False)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    assert "Sign in with Test ID" in page
    assert 'name="password"' not in page
    answer = client.post("/login", data={"username": USERNAME, "password": PASSWORD})
    assert answer.status_code == 403
    assert "Signing in with a password is off here." in answer.get_data(as_text=True)
    assert not signed_in(client)


def test_single_sign_on_off_shows_no_button_and_has_no_routes(client):
    assert "/login/oidc" not in client.get("/login").get_data(as_text=True)
    assert client.get("/login/oidc").status_code == 404
    assert client.get("/login/oidc/callback?code=x&state=y").status_code == 404


def test_claim_values_and_names_are_read_with_care():
    from tracker.auth.oidc import RoleRules, assigned_role, claim_values, username_base

    url_claim = "https://tracker.example.org/roles"
    assert claim_values({url_claim: ["ops"]}, url_claim) == ["ops"]
    assert claim_values({"groups": ["ops", 3, None]}, "groups") == ["ops"]
    assert claim_values({"realm_access": "ops"}, "realm_access.roles") == []
    rules = RoleRules("groups", {"a": "admin", "s": "supervisor", "v": "viewer"}, None)
    assert assigned_role({"groups": ["v", "s"]}, rules) == ("operator", True)
    assert assigned_role({"groups": ["a", "s"]}, rules) == ("admin", True)
    assert assigned_role({"groups": "nothing"}, rules) is None
    assert username_base({"preferred_username": " ..//"}) == "user"
    assert len(username_base({"preferred_username": "x" * 300})) == 80


def test_a_long_taken_name_stays_within_the_limit(db):
    from tracker.auth.oidc import free_username

    long_name = "x" * 80
    with db.session() as session:
        session.add(User(username=long_name, password_hash=""))
        session.add(User(username="x" * 78 + "-2", password_hash=""))
        session.commit()
        assert free_username(session, long_name) == "x" * 78 + "-3"
        assert free_username(session, "x_%") == "x_%"

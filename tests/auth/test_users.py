"""The users page and what roles do in a signed-in browser session."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from tests.support import csrf_token, instance_path
from tracker.audit.models import AuditEvent
from tracker.auth.models import ApiToken, User
from tracker.extensions import db

ROOT = Path(__file__).resolve().parents[2]


def post(client, path: str, page: str = "/users", **fields):
    return client.post(path, data={"csrf_token": csrf_token(client, page), **fields})


def add_user(client, name: str, role: str, password: str = "a long password"):
    return post(client, "/users", username=name, password=password, role=role)


def user_named(app, name: str) -> User:
    with app.app_context():
        return db.session.scalar(select(User).where(User.username == name))


def test_an_admin_adds_users_with_roles_who_can_do_only_that(app, client, user, login):
    login()
    assert add_user(client, "vera", "viewer").status_code == 302
    assert add_user(client, "otto", "operator").status_code == 302
    login.logout()

    login("vera", "a long password")
    assert client.get("/").status_code == 200
    assert client.get("/users").status_code == 403
    refused = post(client, "/instances/crawl", page="/")
    assert refused.status_code == 403
    assert "needs the operator role" in refused.get_data(as_text=True)
    home = client.get("/").get_data(as_text=True)
    assert 'href="/users"' not in home and 'href="/audit"' not in home
    login.logout()

    login("otto", "a long password")
    assert post(client, "/instances/crawl", page="/").status_code == 302
    assert post(client, "/quotas/1/update", page="/").status_code == 403


def test_bad_input_names_the_field_and_adds_nobody(app, client, user, login):
    login()
    short = add_user(client, "vera", "viewer", password="short")
    assert short.status_code == 400
    assert "at least" in short.get_data(as_text=True)
    wrong_role = add_user(client, "vera", "emperor")
    assert wrong_role.status_code == 400
    assert "must be one of viewer, operator, admin" in wrong_role.get_data(as_text=True)
    taken = add_user(client, "ada", "viewer")
    assert taken.status_code == 400
    look_alike = add_user(client, "ADA", "viewer")
    assert look_alike.status_code == 400
    assert "&#39;ada&#39; already exists" in look_alike.get_data(as_text=True)
    assert user_named(app, "vera") is None


def test_the_last_admin_cannot_be_demoted_disabled_or_deleted(app, client, user, login):
    login()
    for path, fields in (
        (f"/users/{user}/role", {"role": "viewer"}),
        (f"/users/{user}/active", {"active": "false"}),
        (f"/users/{user}/delete", {}),
    ):
        answer = post(client, path, **fields)
        assert answer.status_code == 400
        assert "ada is the last active admin" in answer.get_data(as_text=True)
    still = user_named(app, "ada")
    assert still.role == "admin" and still.active


def test_a_reset_password_is_shown_once_and_must_be_changed(app, client, user, login):
    login()
    add_user(client, "vera", "viewer")
    vera = user_named(app, "vera")
    page = post(client, f"/users/{vera.id}/password").get_data(as_text=True)
    temporary = re.search(r'<code class="secret">([^<]+)</code>', page).group(1)
    assert temporary not in client.get("/users").get_data(as_text=True)
    login.logout()

    assert login("vera", "a long password").status_code == 200  # old one is gone
    login("vera", temporary)
    held = client.get("/statistics")
    assert held.status_code == 302 and held.headers["Location"] == "/account"
    kept = post(
        client,
        "/account/password",
        page="/account",
        current_password=temporary,
        new_password=temporary,
        confirm_password=temporary,
    )
    assert kept.status_code == 400
    assert "must differ from the current one" in kept.get_data(as_text=True)
    changed = post(
        client,
        "/account/password",
        page="/account",
        current_password=temporary,
        new_password="my own new password",
        confirm_password="my own new password",
    )
    assert changed.status_code == 302
    assert client.get("/statistics").status_code == 200


def test_a_disabled_user_is_signed_out_and_their_tokens_stop(app, client, user, login):
    login()
    add_user(client, "otto", "operator")
    other = app.test_client()
    from tests.support import Login

    Login(other)("otto", "a long password")
    assert other.get("/").status_code == 200
    otto = user_named(app, "otto")
    post(client, f"/users/{otto.id}/active", active="false")
    assert other.get("/").status_code == 302


def test_a_read_only_token_made_on_the_account_page_only_reads(
    app, client, user, login
):
    login()
    page = post(
        client,
        "/account/tokens",
        page="/account",
        name="grafana",
        days="30",
        read_only="on",
    ).get_data(as_text=True)
    token = re.search(r'<code class="secret">(trk_[^<]+)</code>', page).group(1)
    headers = {"Authorization": f"Bearer {token}"}
    fresh = app.test_client()
    assert fresh.get("/api/instances", headers=headers).status_code == 200
    refused = fresh.post("/api/instances/crawl", headers=headers)
    assert refused.status_code == 403
    assert refused.get_json()["message"] == "this API token is read-only"
    with app.app_context():
        row = db.session.scalar(select(ApiToken).where(ApiToken.name == "grafana"))
        assert row.read_only


def test_an_operator_cannot_delete_through_the_bulk_action(app, client, user, login):
    login()
    add_user(client, "otto", "operator")
    login.logout()
    login("otto", "a long password")
    refused = post(client, "/instances/bulk", page="/", action="delete", number="1")
    assert refused.status_code == 403


def test_users_page_changes_are_in_the_audit_trail(app, client, user, login):
    login()
    add_user(client, "otto", "operator")
    otto = user_named(app, "otto")
    post(client, f"/users/{otto.id}/role", role="admin", supervisor="on")
    post(client, f"/users/{otto.id}/password")
    with app.app_context():
        events = db.session.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.changes)
            .where(AuditEvent.domain == "users", AuditEvent.target_id == str(otto.id))
            .order_by(AuditEvent.id)
        ).all()
    assert [(actor, action) for actor, action, _ in events] == [
        ("ada", "create"),
        ("ada", "update"),
        ("ada", "update"),
        ("ada", "reset_password"),
    ]
    assert events[1].changes == {
        "role": ["operator", "admin"],
        "supervisor": [False, True],
    }
    assert events[2].changes == {"must_change_password": [False, True]}
    assert "password_hash" not in str(events)


def manage(tmp_path, *args: str) -> subprocess.CompletedProcess:
    database = tmp_path / "cli.sqlite"
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "TRACKER_SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}",
            "TRACKER_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1",
        },
        timeout=120,
    )


def test_create_usr_makes_the_first_user_an_admin_and_takes_a_role(tmp_path):
    assert manage(tmp_path, "db", "upgrade").returncode == 0
    first = manage(tmp_path, "create_usr", "root", "a long password")
    assert first.stdout.strip() == "Created user root (admin)."
    second = manage(tmp_path, "create_usr", "vera", "a long password")
    assert second.stdout.strip() == "Created user vera (viewer)."
    third = manage(
        tmp_path, "create_usr", "otto", "a long password", "--role", "operator"
    )
    assert third.stdout.strip() == "Created user otto (operator)."
    wrong = manage(tmp_path, "create_usr", "x", "a long password", "--role", "boss")
    assert wrong.returncode == 2
    assert "'boss' is not one of 'viewer', 'operator', 'admin'" in wrong.stderr
    listed = manage(tmp_path, "users")
    assert "otto" in listed.stdout
    last = manage(tmp_path, "set-role", "root", "viewer")
    assert last.returncode == 1
    assert "role: root is the last active admin" in last.stderr
    promoted = manage(tmp_path, "set-role", "otto", "admin", "--supervisor")
    assert promoted.stdout.strip() == "otto is now admin + supervisor, active."


def test_a_viewer_is_offered_no_action_but_signing_out(app, client, user, login):
    login()
    add_user(client, "vera", "viewer")
    uuid = client.post(
        "/api/instance/",
        json={
            "url": "https://indico.example.org",
            "contact": "Ada",
            "email": "ada@example.org",
            "organisation": "CERN",
        },
    ).get_json()["uuid"]
    admin_detail = client.get(instance_path(client, uuid)).get_data(as_text=True)
    assert 'id="edit-form"' in admin_detail
    login.logout()
    login("vera", "a long password")
    pages = [
        "/",
        instance_path(client, uuid),
        "/quotas",
        "/sync",
        "/allocation/records/",
    ]
    pages += ["/allocation/records/machines/", "/batch-operations", "/account"]
    for path in pages:
        page = client.get(path)
        assert page.status_code == 200, path
        actions = re.findall(r'<form method="post" action="([^"]+)"', page.text)
        allowed = {"/logout", "/account/password", "/account/tokens"}
        assert set(actions) <= allowed, (path, actions)
    detail = client.get(instance_path(client, uuid)).get_data(as_text=True)
    assert "https://indico.example.org" in detail  # shown, not editable


def test_a_reload_issues_no_second_secret(app, client, user, login):
    login()
    page = client.get("/account").get_data(as_text=True)
    once = re.search(r'name="once" value="([^"]+)"', page).group(1)
    form = {"csrf_token": csrf_token(client, "/account"), "days": "30", "once": once}
    first = client.post("/account/tokens", data={**form, "name": "grafana"})
    assert "trk_" in first.get_data(as_text=True)
    again = client.post("/account/tokens", data={**form, "name": "grafana"})
    assert again.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count(ApiToken.id))) == 1
    add_user(client, "vera", "operator")
    users = client.get("/users").get_data(as_text=True)
    with app.app_context():
        vera = db.session.scalar(select(User.id).where(User.username == "vera"))
    path = f"/users/{vera}/password"
    form_html = users[users.index(f'action="{path}"') :]
    once = re.search(r'name="once" value="([^"]+)"', form_html).group(1)
    fields = {"csrf_token": csrf_token(client, "/users"), "once": once}
    shown = client.post(path, data=fields).get_data(as_text=True)
    temporary = re.search(r'<code class="secret">([^<]+)</code>', shown).group(1)
    assert client.post(path, data=fields).status_code == 302
    login.logout()
    assert login("VERA", temporary).status_code == 302  # any letter case signs in


def test_a_viewer_cannot_be_made_supervisor_and_the_last_admin_is_offered_no_end(
    app, client, user, login
):
    login()
    refused = post(
        client,
        "/users",
        username="vic",
        password="a long password",
        role="viewer",
        supervisor="on",
    )
    assert refused.status_code == 400
    assert "a viewer cannot supervise" in refused.get_data(as_text=True)
    page = client.get("/users").get_data(as_text=True)
    assert "the last active admin" in page
    assert f'action="/users/{user}/delete"' not in page

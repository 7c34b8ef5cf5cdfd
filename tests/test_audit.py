"""One audit trail: tracked records in the change's own transaction, the
request net for the rest, commands named, secrets hidden, a filtered API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
from sqlalchemy import select

from tracker.audit.models import AuditEvent
from tracker.db_types import utcnow
from tracker.extensions import db

ROOT = Path(__file__).resolve().parents[1]
REGISTRATION = {
    "url": "https://indico.example.org",
    "contact": "Ada",
    "email": "ada@example.org",
    "organisation": "CERN",
}


def events(app, **where) -> list[AuditEvent]:
    with app.app_context():
        statement = select(AuditEvent).filter_by(**where).order_by(AuditEvent.id)
        rows = db.session.scalars(statement).all()
        db.session.expunge_all()
        return rows


def test_a_client_change_and_an_admin_delete_are_recorded_with_old_and_new(
    app, client, auth_headers
):
    uuid = client.post("/api/instance/", json=REGISTRATION).get_json()["uuid"]
    client.patch(f"/api/instance/{uuid}", json={"url": "https://new.example.org"})
    client.delete(f"/api/instances/{uuid}", headers=auth_headers)
    create, update, delete = events(app, domain="instances", target_type="Instance")
    assert (create.actor, create.via, create.action) == ("anonymous", "api", "create")
    assert create.changes["url"] == "https://indico.example.org"
    assert uuid not in str(create.changes)
    assert (update.actor, update.via, update.action) == ("anonymous", "api", "update")
    assert update.changes == {
        "url": ["https://indico.example.org", "https://new.example.org"]
    }
    assert (delete.actor, delete.action) == ("ada", "delete")
    assert delete.changes["url"] == "https://new.example.org"


def test_a_write_without_a_tracked_record_is_caught_by_the_request_net(
    app, client, auth_headers
):
    answer = client.put(
        "/api/pauses/tag/clinics",
        json={"until": "2100-01-01T00:00:00Z", "note": "rainy season"},
        headers=auth_headers,
    )
    assert answer.status_code == 200
    (event,) = events(app, domain="instances", action="pause")
    assert (event.actor, event.target_type) == ("ada", "route")
    assert event.target_id == "kind=tag,value=clinics"
    assert event.changes == {"until": "2100-01-01T00:00:00Z", "note": "rainy season"}
    refused = client.put(
        "/api/pauses/tag/clinics", json={"until": "yesterday"}, headers=auth_headers
    )
    assert refused.status_code == 400
    assert len(events(app, action="pause")) == 1  # a refusal changes nothing


def test_a_rolled_back_change_leaves_no_event(app):
    from allocation.models import Machine
    from tracker.audit.trail import install

    with app.app_context():
        install(db.session)
        db.session.add(Machine(name="avoca"))
        db.session.flush()
        db.session.rollback()
    assert events(app, target_type="Machine") == []


def test_secrets_are_hidden_and_never_stored(app, client, auth_headers):
    answer = client.post(
        "/api/quotas",
        json={
            "record_kind": "household",
            "target": 100,
            "window_start": "2100-01-01T00:00:00Z",
            "window_expires": "2100-12-31T00:00:00Z",
        },
        headers=auth_headers,
    )
    assert answer.status_code == 201, answer.get_json()
    added = client.post(
        "/api/quotas/household/clients",
        json={
            "name": "laptop-1",
            "endpoint": "http://127.0.0.1:9/quota",
            "secret": "a very secret secret value",
        },
        headers=auth_headers,
    )
    assert added.status_code == 201, added.get_json()
    (client_event,) = events(app, target_type="QuotaClient")
    assert client_event.changes["secret"] == "(hidden)"
    with app.app_context():
        stored = " ".join(
            str(row.changes) for row in db.session.scalars(select(AuditEvent))
        )
    assert "a very secret secret value" not in stored


def test_the_api_filters_and_names_a_bad_date(app, client, auth_headers):
    client.post("/api/instance/", json=REGISTRATION)
    client.post(
        "/api/allocation/machines", json={"name": "avoca"}, headers=auth_headers
    )
    listed = client.get("/api/audit?domain=allocation", headers=auth_headers)
    assert listed.status_code == 200
    body = listed.get_json()
    assert body["total"] == 1
    assert body["items"][0]["target_type"] == "Machine"
    assert body["items"][0]["actor"] == "ada"
    by_user = client.get("/api/audit?user=nobody", headers=auth_headers).get_json()
    assert by_user["total"] == 0
    bad = client.get("/api/audit?since=last-tuesday", headers=auth_headers)
    assert bad.status_code == 400
    assert bad.get_json()["field"] == "since"


def test_the_page_lists_and_filters_events(app, client, signed_in, auth_headers):
    client.post(
        "/api/allocation/machines", json={"name": "avoca"}, headers=auth_headers
    )
    page = client.get("/audit?domain=allocation").get_data(as_text=True)
    assert "avoca" in page and "Machine" in page
    empty = client.get("/audit?domain=quota").get_data(as_text=True)
    assert "No event matches these filters." in empty
    mistyped = client.get("/audit?since=yesterday").get_data(as_text=True)
    assert "From: yesterday is not a date (YYYY-MM-DD); left out." in mistyped
    assert "avoca" in mistyped  # the other filters still apply: none here
    shouted = client.get("/audit?user=ADA&action=CREATE").get_data(as_text=True)
    assert "avoca" in shouted
    backwards = client.get("/audit?since=2026-12-02&until=2026-12-01").text
    assert "From is after To" in backwards


def test_a_command_is_recorded_as_manage_py(tmp_path):
    database = tmp_path / "cli.sqlite"
    env = {
        "PATH": "/usr/bin:/bin",
        "USER": "ops",
        "LOGNAME": "ops",
        "TRACKER_SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}",
        "TRACKER_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1",
    }

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
        )

    assert manage("db", "upgrade").returncode == 0
    assert manage("create_usr", "root", "a long password").returncode == 0
    assert manage("rotate-secrets").returncode == 0
    import sqlite3

    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT actor, via, domain, action, target_type FROM audit_events"
        ).fetchall()
    assert rows == [
        ("manage.py (ops)", "cli", "users", "create", "User"),
        ("manage.py (ops)", "cli", "tracker", "rotate-secrets", ""),
    ]


def test_a_job_a_person_starts_is_recorded_and_the_schedules_are_not(
    app, client, auth_headers
):
    from tracker.batch.operations import create_asynchronous

    started = client.post("/api/instances/crawl", headers=auth_headers)
    assert started.status_code == 202
    with app.app_context():
        create_asynchronous(db.session, "quota-pull", scope="household")
        db.session.commit()
    (job,) = events(app, domain="batch")
    assert (job.actor, job.action, job.summary) == ("ada", "create", "crawl")


def test_a_write_that_changes_nothing_is_not_an_action(app, client, auth_headers):
    uuid = client.post("/api/instance/", json=REGISTRATION).get_json()["uuid"]
    for _ in range(2):
        answer = client.post(f"/api/instances/{uuid}/approve", headers=auth_headers)
        assert answer.status_code == 200
    approvals = events(app, domain="instances", action="update")
    assert [event.changes for event in approvals] == [{"approved": [False, True]}]
    assert events(app, action="approve_instance") == []


def test_a_command_that_wrote_and_recorded_nothing_is_caught_by_the_command_net(app):
    from click.testing import CliRunner
    from flask.cli import ScriptInfo, with_appcontext

    from tracker.audit.trail import act_for_commands
    from tracker.cli import cli
    from tracker.instances.models import Pause

    act_for_commands(app)

    @app.cli.command("pause-lab")
    @click.option("--note")
    @with_appcontext
    def pause_lab(note):
        db.session.add(Pause(kind="tag", value="lab", until=utcnow(), note=note))
        db.session.commit()

    @app.cli.command("look")
    @with_appcontext
    def look():
        db.session.scalars(select(Pause)).all()

    runner = CliRunner()
    for words in (["pause-lab", "--note=the door code is 4711"], ["look"]):
        result = runner.invoke(cli, words, obj=ScriptInfo(create_app=lambda: app))
        assert result.exit_code == 0, result.output
    with app.app_context():
        events = db.session.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.summary)
        ).all()
    [(actor, action, summary)] = events  # reading is not an action
    assert actor.startswith("manage.py") and action == "command"
    assert summary == "manage.py pause-lab --note"  # never the option's value

"""manage.py as an operator runs it: real processes, wrong arguments, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, select

from tests.support import REGISTRATION

ROOT = Path(__file__).resolve().parents[1]


def manage_command(database_url: str, tmp_path: Path):
    """Run ``python manage.py ...`` against ``database_url``; return the result."""

    def run(
        *args: str, env: dict | None = None, stdin: str = ""
    ) -> subprocess.CompletedProcess:
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("TRACKER_")
        }
        environment.update(
            {
                "TRACKER_INSTANCE_PATH": str(tmp_path / "instance"),
                "TRACKER_SQLALCHEMY_DATABASE_URI": database_url,
                **(env or {}),
            }
        )
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=environment,
            cwd=tmp_path,
            timeout=120,
        )

    return run


@pytest.fixture
def manage(database_url, tmp_path):
    """``manage.py`` on the test database, which holds every table."""
    return manage_command(database_url, tmp_path)


@pytest.fixture
def manage_empty(empty_database_url, tmp_path):
    """``manage.py`` on an empty database."""
    return manage_command(empty_database_url, tmp_path)


def table_names(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def assert_clean_failure(
    result: subprocess.CompletedProcess, code: int, text: str
) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert text in result.stderr


def test_upgrade_on_an_empty_database_creates_every_table(
    manage_empty, empty_database_url
):
    result = manage_empty("db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert {"instances", "users", "api_tokens", "alembic_version"} <= table_names(
        empty_database_url
    )


def test_migrations_match_the_models(manage_empty, empty_database_url):
    """After upgrade, autogenerate finds nothing: no model lacks a migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from tracker.extensions import db
    from tracker.models import import_all_models

    assert manage_empty("db", "upgrade").returncode == 0
    import_all_models()
    engine = create_engine(empty_database_url)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), db.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_create_user_then_sign_in_with_it(manage, app, client):
    result = manage("create_usr", "grace", "grace-hopper-pass")
    assert result.returncode == 0, result.stderr
    assert "Created user grace" in result.stdout
    from tracker.auth.models import User
    from tracker.extensions import db

    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "grace"))
        assert user.check_password("grace-hopper-pass")


def test_create_user_spelling_and_duplicates(manage, app):
    assert manage("create_user", "linus", "torvalds-pass").returncode == 0
    assert_clean_failure(
        manage("create_usr", "linus", "torvalds-pass"), 1, "already exists"
    )


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (("no-such-command",), 2, "No such command"),
        (("create_usr",), 2, "Missing argument"),
        (("create_usr", "bad name!", "pw"), 2, "USERNAME"),
        (("create_usr", "nopass"), 2, "PASSWORD missing"),
        (("create_usr", "a", "b", "c"), 2, "unexpected extra argument"),
        (("create-token", "nobody"), 1, "no user 'nobody'"),
        (("run", "--port", "0"), 2, "--port"),
        (("db", "sideways"), 2, "No such command"),
    ],
)
def test_wrong_arguments_give_usage_not_a_traceback(manage, app, args, code, text):
    assert_clean_failure(manage(*args), code, text)


def test_bad_settings_give_one_line(manage_empty):
    result = manage_empty("db", "upgrade", env={"TRACKER_API_PAGE_SIZE": "lots"})
    assert_clean_failure(result, 1, "settings: API_PAGE_SIZE = 'lots' is invalid")
    assert len(result.stderr.strip().splitlines()) == 1


def test_drop_asks_and_keeps_the_tables_when_not_confirmed(manage, app, database_url):
    result = manage("db", "drop", stdin="n\n")
    assert result.returncode == 1
    assert "instances" in table_names(database_url)


def test_recreate_yes_empties_the_database(manage, db, client, database_url):
    from tracker.instances.models import Instance

    client.post("/api/instance/", json=REGISTRATION)
    assert db.count(Instance) == 1
    result = manage("db", "recreate", "--yes")
    assert result.returncode == 0, result.stderr
    assert db.count(Instance) == 0
    # Recreated tables are marked as migrated: upgrade has nothing to do.
    assert manage("db", "upgrade").returncode == 0


def test_create_token_prints_a_working_token(manage, app, client):
    assert manage("create_usr", "ops", "operations-pass").returncode == 0
    result = manage("create-token", "ops", "--name", "ci")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    response = client.get(
        "/api/instances", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200


def test_upgrading_an_older_database_keeps_its_instances(
    manage_empty, empty_database_url
):
    from sqlalchemy import text

    first = sorted((ROOT / "tracker/migrations/versions").glob("*.py"))[0]
    revision = first.name.split("_")[1]
    assert manage_empty("db", "upgrade", revision).returncode == 0
    engine = create_engine(empty_database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO instances (uuid, enabled, url, contact, email,"
                    " organisation, registered, updated) VALUES ('u-1', true,"
                    " 'https://old.example.org', 'C', 'c@example.org', 'O',"
                    " '2020-01-01 00:00:00', '2020-01-01 00:00:00')"
                )
            )
        result = manage_empty("db", "upgrade")
        assert result.returncode == 0, result.stderr
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT url, health, approved, crawled FROM instances")
            ).one()
    finally:
        engine.dispose()
    assert row.url == "https://old.example.org"
    assert row.health == "unknown"
    assert row.approved in (True, 1)


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_run_serves_web_worker_and_beat_and_stops_them_all(tmp_path, stop):
    import signal
    import time

    import psutil
    import requests

    from tests.services import free_port

    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    environment["TRACKER_INSTANCE_PATH"] = str(tmp_path / "instance")
    log = (tmp_path / "run.log").open("w")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "run", "--port", str(port)],
        env=environment,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while "ready." not in (tmp_path / "run.log").read_text():
            assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()
            time.sleep(0.2)
        output = (tmp_path / "run.log").read_text()
        assert "Created the first user: admin / " in output
        assert f"http://127.0.0.1:{port}/" in output
        assert "beat: Starting" in output
        assert (
            requests.get(f"http://127.0.0.1:{port}/login", timeout=10).status_code
            == 200
        )
        children = psutil.Process(process.pid).children(recursive=True)
        assert children
        # Stopped by a service manager, or killed outright: nothing outlives it.
        process.send_signal(getattr(signal, stop))
        process.wait(timeout=30)
        _, alive = psutil.wait_procs(children, timeout=30)
        assert alive == []
    finally:
        if process.poll() is None:
            process.kill()
        log.close()


def test_the_request_log_of_run_masks_instance_uuids(app, caplog):
    import logging
    import threading

    import requests
    from werkzeug.serving import make_server

    from tracker.cli import RedactingRequestHandler

    uuid = "0b5e4f0e-3c1a-4c39-9b1e-6c2b0e6a5d11"
    server = make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=RedactingRequestHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            assert requests.get(f"{base}/api/instance/{uuid}", timeout=10).ok is False
            # Percent-encoded, the uuid is still masked once decoded for the log.
            encoded = uuid.replace("b", "%62")
            requests.patch(f"{base}/instance/{encoded}", json={}, timeout=10)
    finally:
        server.shutdown()
        thread.join()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/api/instance/<uuid>" in logged
    assert "/instance/<uuid>" in logged
    assert uuid not in logged
    assert "%62" not in logged


def test_help_shows_only_the_products_commands_and_options(manage):
    result = manage("--help")
    assert result.returncode == 0, result.stderr
    for foreign in ("--env-file", "--app", "--debug", "limiter"):
        assert foreign not in result.stdout
    for command in ("create_usr", "set-password", "users", "tokens", "runworker"):
        assert command in result.stdout


def test_create_user_reads_a_piped_password(manage, app):
    from tracker.auth.models import User
    from tracker.extensions import db

    result = manage("create_usr", "grace", stdin="grace-hopper-pass\n")
    assert result.returncode == 0, result.stderr
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "grace"))
        assert user.check_password("grace-hopper-pass")


@pytest.mark.parametrize("piped", [False, True])
def test_a_too_short_password_is_refused_in_one_line(manage, app, piped):
    from tracker.auth.models import User
    from tracker.extensions import db

    args = ("create_usr", "grace") if piped else ("create_usr", "grace", "short-pw")
    result = manage(*args, stdin="short-pw\n" if piped else "")
    assert_clean_failure(result, 1, "at least 12 characters")
    assert len(result.stderr.strip().splitlines()) == 1
    with app.app_context():
        assert db.session.scalar(select(User)) is None


def test_set_password_changes_it_and_ends_the_users_sessions(
    manage, app, client, user, login
):
    from tracker.auth.models import User
    from tracker.extensions import db

    login()
    assert client.get("/").status_code == 200
    assert_clean_failure(manage("set-password", "ada", stdin="too-short\n"), 1, "12")
    result = manage("set-password", "ada", stdin="a brand new passphrase\n")
    assert result.returncode == 0, result.stderr
    assert "ended 1 session" in result.stdout
    assert client.get("/").status_code == 302
    with app.app_context():
        assert db.session.get(User, user).check_password("a brand new passphrase")
    assert_clean_failure(manage("set-password", "nobody", stdin="x" * 20), 1, "no user")


def test_users_lists_every_user(manage, app, user, token):
    assert manage("create_usr", "grace", "grace-hopper-pass").returncode == 0
    result = manage("users")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["USER", "ROLE", "ACTIVE", "CREATED", "TOKENS"]
    assert [line.split()[0] for line in lines[1:]] == ["ada", "grace"]
    assert lines[1].split()[-1] == "1" and lines[2].split()[-1] == "0"


def test_tokens_expire_list_and_revoke(manage, app, client, user):
    from datetime import timedelta

    from tracker.auth.models import ApiToken
    from tracker.db_types import utcnow
    from tracker.extensions import db

    result = manage("create-token", "ada", "--expires-in", "7", "--name", "ci")
    assert result.returncode == 0, result.stderr
    headers = {"Authorization": f"Bearer {result.stdout.strip()}"}
    with app.app_context():
        row = db.session.scalar(select(ApiToken))
        assert timedelta(days=6) < row.expires - utcnow() <= timedelta(days=7)
    assert client.get("/api/instances", headers=headers).status_code == 200
    listed = manage("tokens", "list").stdout.splitlines()
    assert listed[0].split()[:3] == ["ID", "USER", "NAME"]
    assert listed[1].split()[:4] == [str(row.id), "ada", "ci", "full"]
    assert listed[1].split()[-1] == "active"
    made = manage("create-token", "ada", "--name", "grafana", "--read-only")
    assert made.returncode == 0, made.stderr
    [grafana] = [
        line
        for line in manage("tokens", "list").stdout.splitlines()[1:]
        if "grafana" in line
    ]
    assert grafana.split()[3] == "read-only"
    assert "never" not in listed[1]  # its last use is shown
    assert manage("tokens", "revoke", str(row.id)).returncode == 0
    mine = manage("tokens", "list", "--user", "ada").stdout.splitlines()
    assert mine[1].split()[-1] == "revoked"
    response = client.get("/api/instances", headers=headers)
    assert response.status_code == 401
    assert response.is_json
    assert_clean_failure(manage("tokens", "revoke", "999"), 1, "no token 999")
    assert_clean_failure(
        manage("create-token", "ada", "--expires-in", "0"), 2, "--expires-in"
    )


def test_downgrade_then_upgrade_again(manage_empty, empty_database_url):
    assert manage_empty("db", "upgrade").returncode == 0
    result = manage_empty("db", "downgrade", "d721e51ea460", "--yes")
    assert result.returncode == 0, result.stderr
    assert "user_sessions" not in table_names(empty_database_url)
    assert manage_empty("db", "downgrade", stdin="n\n").returncode == 1
    assert manage_empty("db", "downgrade", "base", "--yes").returncode == 0
    assert table_names(empty_database_url) <= {"alembic_version"}
    assert manage_empty("db", "upgrade").returncode == 0
    assert "user_sessions" in table_names(empty_database_url)


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("--queues", "celery,nope"), "a comma-separated list of celery, crawl"),
        (("--queues", ""), "a comma-separated list"),
        (("--name", "bad name"), "--name"),
    ],
)
def test_runworker_refuses_unknown_queues_and_names(manage, args, text):
    assert_clean_failure(manage("runworker", *args), 2, text)


def test_an_instance_folder_that_cannot_be_made_is_one_line_naming_it(
    manage_empty, tmp_path
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    folder = blocker / "instance"
    result = manage_empty("db", "upgrade", env={"TRACKER_INSTANCE_PATH": str(folder)})
    assert_clean_failure(result, 1, f"instance folder {folder}: cannot be created")
    assert len(result.stderr.strip().splitlines()) == 1

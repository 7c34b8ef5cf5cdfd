"""Fixtures: the app on SQLite and on a real PostgreSQL, its clients, users."""

from __future__ import annotations

import itertools
import threading

import pytest
from werkzeug.serving import make_server

from tests.chromium import launched_chromium
from tests.services import start_postgres
from tracker import create_app
from tracker.extensions import db as database

DATABASES = ("sqlite", "postgresql")
_database_names = itertools.count()


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    """No TRACKER_* variable or ./settings.cfg from the developer's shell leaks in."""
    import os

    for name in list(os.environ):
        if name.startswith("TRACKER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def postgres():
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture(params=DATABASES)
def database_url(request, tmp_path):
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite'}"
        return
    server = request.getfixturevalue("postgres")
    name = f"tracker_test_{next(_database_names)}"
    server.admin(f"CREATE DATABASE {name}")
    yield server.url(name)
    server.admin(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def make_app(database_url, tmp_path):
    """Build apps on the test database, with extra settings; close them after."""
    apps = []

    def make(**overrides):
        settings = {"SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True}
        settings.update(overrides)
        app = create_app(settings, instance_path=tmp_path / "instance", environ={})
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            database.engine.dispose()


@pytest.fixture
def app(make_app):
    app = make_app()
    with app.app_context():
        from tracker.models import import_all_models

        import_all_models()
        database.create_all()
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def user(app):
    """A dashboard user ``ada`` with password ``correct horse``."""
    from tracker.auth.models import User

    with app.app_context():
        user = User(username="ada")
        user.set_password("correct horse")
        database.session.add(user)
        database.session.commit()
        return user.id


@pytest.fixture
def token(app, user):
    """A Bearer token for ``ada``."""
    from tracker.auth.models import User
    from tracker.auth.tokens import issue_token

    with app.app_context():
        value = issue_token(database.session, database.session.get(User, user), "tests")
        database.session.commit()
        return value


@pytest.fixture
def auth_headers(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium, one for the whole run: Playwright's sync API allows
    only one instance at a time in a process."""
    with launched_chromium() as launched:
        yield launched


@pytest.fixture
def live_server(app):
    """The app served by a real threaded HTTP server on loopback."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()

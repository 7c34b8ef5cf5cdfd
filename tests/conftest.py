"""Fixtures: the app on SQLite and on a real PostgreSQL, its clients, users.

The schema is built once per run for each kind of database; every test gets a
copy of its own (a copied SQLite file, a PostgreSQL database cloned from a
template), as fresh as one made with ``create_all``.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.chromium import launched_chromium
from tests.services import start_postgres
from tests.support import PASSWORD, USERNAME, Database, Login, serve
from tracker import create_app
from tracker.extensions import db as database

DATABASES = ("sqlite", "postgresql")
# Passwords are hashed with one cheap round: the hash is not what tests test.
TEST_SETTINGS = {"TESTING": True, "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1"}


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    """No TRACKER_* variable or ./settings.cfg from the developer's shell leaks in."""
    for name in list(os.environ):
        if name.startswith("TRACKER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def build_app(database_url: str, instance_path, **overrides):
    """The application under test on ``database_url``."""
    settings = {**TEST_SETTINGS, "SQLALCHEMY_DATABASE_URI": database_url}
    settings.update(overrides)
    return create_app(settings, instance_path=instance_path, environ={})


def build_schema(database_url: str, instance_path) -> None:
    """Create every table of every domain on an empty database."""
    app = build_app(database_url, instance_path)
    with app.app_context():
        from tracker.models import import_all_models

        import_all_models()
        database.create_all()
        database.engine.dispose()


@pytest.fixture(scope="session")
def postgres():
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sqlite_schema(tmp_path_factory):
    """A SQLite file holding the schema, built once per run."""
    directory = tmp_path_factory.mktemp("sqlite-schema")
    path = directory / "schema.sqlite"
    build_schema(f"sqlite:///{path}", directory / "instance")
    return path


@pytest.fixture(scope="session")
def postgres_schema(postgres, tmp_path_factory):
    """A PostgreSQL database holding the schema, built once per run to clone."""
    name = postgres.create_database()
    build_schema(postgres.url(name), tmp_path_factory.mktemp("pg-schema"))
    return name


@pytest.fixture(params=DATABASES)
def database_kind(request):
    return request.param


@pytest.fixture
def empty_database_url(database_kind, request, tmp_path):
    """A fresh, empty database of each kind."""
    if database_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        return
    server = request.getfixturevalue("postgres")
    name = server.create_database()
    yield server.url(name)
    server.drop_database(name)


@pytest.fixture
def database_url(database_kind, request, tmp_path):
    """A fresh database of each kind holding every table, and no rows."""
    if database_kind == "sqlite":
        path = tmp_path / "test.sqlite"
        shutil.copyfile(request.getfixturevalue("sqlite_schema"), path)
        yield f"sqlite:///{path}"
        return
    server = request.getfixturevalue("postgres")
    name = server.create_database(template=request.getfixturevalue("postgres_schema"))
    yield server.url(name)
    server.drop_database(name)


@pytest.fixture
def make_app(database_url, tmp_path):
    """Build apps on the test database, with extra settings; close them after."""
    apps = []

    def make(**overrides):
        app = build_app(database_url, tmp_path / "instance", **overrides)
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            database.engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def db(app):
    """The app's database, each use in an app context of its own."""
    return Database(app)


@pytest.fixture
def login(client):
    """Sign ``client`` in and out through the sign-in form: ``login()``."""
    return Login(client)


@pytest.fixture
def user(db):
    """A dashboard user ``ada`` with password ``correct horse``."""
    from tracker.auth.models import User

    with db.session() as session:
        user = User(username=USERNAME, role="admin")
        user.set_password(PASSWORD)
        session.add(user)
        session.commit()
        return user.id


@pytest.fixture
def signed_in(client, user, login):
    """The test client, signed in as ``ada``."""
    login()
    return client


@pytest.fixture
def token(db, user):
    """A Bearer token for ``ada``."""
    from tracker.auth.models import User
    from tracker.auth.tokens import issue_token

    with db.session() as session:
        value = issue_token(session, session.get(User, user), "tests")
        session.commit()
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
    with serve(app) as url:
        yield url

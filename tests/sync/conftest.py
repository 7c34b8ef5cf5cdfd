"""Fixtures of the sync tests: the server app and field clients registered on it."""

from __future__ import annotations

import pytest

from tests.support import serve
from tests.sync.field_app import create_field_app, create_relay_app, field_db
from tests.sync.processes import Processes
from tests.sync.support import FIELD_MODELS, register


@pytest.fixture
def app(make_app):
    """The app with the field applications' models on the sync allow-list."""
    return make_app(SYNC_MODELS=FIELD_MODELS)


@pytest.fixture
def server(app):
    return app


@pytest.fixture
def make_field(tmp_path):
    apps = []

    def make(server_app, producer_id: str, encrypt: bool = False):
        credential, key = register(server_app, producer_id, encrypt)
        url = f"sqlite:///{tmp_path / (producer_id + '.sqlite')}"
        app = create_field_app(url, producer_id, key, credential)
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            field_db.session.remove()
            field_db.engine.dispose()


@pytest.fixture
def server_url(server):
    """The server on a real HTTP server on loopback."""
    with serve(server) as url:
        yield url


@pytest.fixture
def relay(tmp_path):
    """A middleman app on its own database."""
    app = create_relay_app(f"sqlite:///{tmp_path / 'relay.sqlite'}")
    yield app
    with app.app_context():
        field_db.session.remove()
        field_db.engine.dispose()


@pytest.fixture
def processes(tmp_path):
    """Start processes; each is SIGKILLed at the end, pass or fail."""
    started = Processes(tmp_path)
    yield started
    started.kill_all()

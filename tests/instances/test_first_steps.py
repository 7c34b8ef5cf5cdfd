"""The home page's first-run checklist and empty list."""

from __future__ import annotations

import re

from tests.support import Database, Login
from tracker.auth.models import User
from tracker.db_types import utcnow
from tracker.instances.models import Instance


def steps(page: str) -> dict[str, str]:
    return dict(
        (step, state)
        for state, step in re.findall(
            r'<li class="(done|todo)" data-step="(\w+)"', page
        )
    )


def test_a_fresh_install_lists_what_to_do_first(signed_in):
    page = signed_in.get("/").get_data(as_text=True)
    assert steps(page) == {
        "endpoints": "todo",
        "registered": "todo",
        "crawled": "todo",
        "accounts": "done",  # ada is not the generated admin
    }
    assert "set CRAWLING_ENDPOINTS in settings.cfg" in page
    assert "Loopback addresses (127.0.0.0/8, ::1) are refused by default" in page
    assert "No instance has registered yet" in page
    filtered = signed_in.get("/?q=nothing").get_data(as_text=True)
    assert "No instance matches." in filtered


def test_the_checklist_goes_once_everything_is_done(make_app):
    app = make_app(CRAWLING_ENDPOINTS=[{"url": "/info"}], CRAWL_DENY_NETWORKS=[])
    db = Database(app)
    with db.session() as session:
        admin = User(username="admin", role="admin")
        admin.set_password("correct horse")
        session.add(admin)
        session.add(
            Instance(
                url="https://a.example.org",
                contact="C",
                email="c@example.org",
                organisation="O",
                last_success=utcnow(),
            )
        )
        session.commit()
    client = app.test_client()
    Login(client)("admin")
    page = client.get("/").get_data(as_text=True)
    assert steps(page) == {
        "endpoints": "done",
        "registered": "done",
        "crawled": "done",
        "accounts": "todo",
    }
    assert "Loopback addresses" not in page
    with db.session() as session:
        ada = User(username="ada", role="admin")
        ada.set_password("correct horse")
        session.add(ada)
        session.commit()
    assert 'id="first-steps"' not in client.get("/").get_data(as_text=True)

"""'Crawl all' from the list page, run by a real worker on the embedded broker."""

from __future__ import annotations

import pytest

from tests.celery_processes import celery_environment, start_worker
from tests.fleet import JSON, Behaviour, Fleet
from tests.support import USERNAME, screenshot, serve, signed_in_tab
from tracker.auth.models import User
from tracker.extensions import db
from tracker.instances.models import Instance

pytestmark = pytest.mark.slow


def test_crawl_all_shows_progress_until_it_ends(browser, make_app, tmp_path):
    addresses = [f"127.0.40.{n}" for n in range(1, 7)]
    behaviours = dict.fromkeys(addresses, Behaviour(JSON, delay=0.5, data={"v": 1}))
    settings = {
        "SECRET_KEY": "browser-tests-with-a-key-of-32-bytes",
        "CRAWLING_ENDPOINTS": [{"url": "/info"}],
        "CRAWL_DENY_NETWORKS": [],
        "CRAWL_CONCURRENCY": 2,
        "CRAWL_TIMEOUT": 3.0,
        "CRAWL_CONNECT_TIMEOUT": 1.0,
    }
    app = make_app(**settings)
    with Fleet(behaviours) as fleet, app.app_context():
        for address in addresses:
            db.session.add(
                Instance(
                    url=fleet.url(address),
                    contact="C",
                    email="c@example.org",
                    organisation="O",
                    approved=True,
                )
            )
        user = User(username=USERNAME, role="admin")
        user.set_password("pw")
        db.session.add(user)
        db.session.commit()
        env = celery_environment(
            {
                **settings,
                "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            },
            tmp_path / "instance",
        )
        worker = start_worker(env, tmp_path / "worker.log", concurrency=1)
        try:
            with serve(app) as base, signed_in_tab(browser, base, "pw") as page:
                states = page.locator("td.state .badge")
                assert states.count() == 6
                assert all("state-unknown" in c for c in _classes(states))
                page.click("text=Crawl all")
                box = page.locator("#operation-progress")
                box.wait_for()
                page.wait_for_selector(
                    "#operation-progress[data-status=finished]", timeout=30000
                )
                assert box.get_attribute("data-result") == "successful"
                assert box.locator(".progress-label").inner_text() == "successful"
                assert (
                    page.locator("#operation-progress progress").get_attribute("value")
                    == "6"
                )
                # The rows' states follow the run without a reload.
                page.wait_for_function(
                    "() => [...document.querySelectorAll('td.state')].every("
                    "cell => cell.dataset.live"
                    " && cell.querySelector('.badge.state-up'))",
                    timeout=15000,
                )
                screenshot(page, "crawl-all")
                page.goto("/?health=up")
                listed = page.locator("#instances-listed").inner_text()
                assert listed.startswith("6 listed")
        finally:
            worker.stop()


def _classes(locator) -> list[str]:
    return [locator.nth(n).get_attribute("class") for n in range(locator.count())]

"""Pages in headless Chromium (Playwright), against the app served on loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support import PASSWORD, USERNAME, serve, signed_in_tab
from tracker.auth.models import User
from tracker.extensions import db
from tracker.instances.models import CrawlResult, DailyValue, Instance

FIELDS = {
    "python_version": {"label": "Python", "chart": True, "chart_type": "pie"},
    "events": {
        "chart": True,
        "chart_aggregation": "sum",
        "chart_aggregate_by": "country",
    },
    "rooms": {
        "chart": True,
        "aggregation": "sum",
        "chart_aggregation": "avg",
        "chart_aggregate_by": "python_version",
    },
    "users": {"chart": True, "chart_type": "line", "chart_aggregation": "sum"},
}
PLACES = [
    ("CH", "Switzerland", "Geneva", 46.2, 6.14),
    ("KE", "Kenya", "Kisumu", -0.1, 34.75),
    ("KE", "Kenya", "Nairobi", -1.29, 36.82),
    ("BR", "Brazil", "Manaus", -3.1, -60.0),
    (None, None, None, None, None),
]


def seed(count: int = 30) -> None:
    """Instances spread over places, with crawled values and a week of history."""
    now = datetime.now(UTC)
    for index in range(count):
        code, country, city, lat, lng = PLACES[index % len(PLACES)]
        crawled = {
            "python_version": ["3.11", "3.12", "3.13"][index % 3],
            "events": index,
            "rooms": [1, 2, index % 4],
            "users": 10 + index,
        }
        instance = Instance(
            url=f"https://site{index:02d}.example.org",
            contact=f"Contact {index}",
            email=f"c{index}@example.org",
            organisation=["Clinics", "Field", "HPC"][index % 3],
            approved=True,
            enabled=index % 10 != 9,
            registered=now - timedelta(days=60 - index),
            health=["up", "up", "down", "unknown"][index % 4],
            last_attempt=now - timedelta(hours=1),
            crawled=crawled,
            country_code=code,
            country_name=country,
            city=city,
            latitude=lat,
            longitude=lng,
        )
        db.session.add(instance)
        db.session.flush()
        for day in range(7):
            db.session.add(
                DailyValue(
                    field="users",
                    day=(now - timedelta(days=day)).date(),
                    instance_id=instance.id,
                    value=10 + index - day,
                )
            )
            db.session.add(
                CrawlResult(
                    instance_id=instance.id,
                    crawled_at=now - timedelta(days=day),
                    health="up",
                    status=200,
                    duration_ms=30,
                    data={**crawled, "users": 10 + index - day},
                )
            )
    user = User(username=USERNAME)
    user.set_password(PASSWORD)
    db.session.add(user)
    db.session.commit()


@pytest.fixture
def dashboard(make_app):
    """The app with configured charts and seeded instances, served on loopback."""
    app = make_app(CRAWLED_FIELDS_SETTINGS=FIELDS, DASHBOARD_PAGE_SIZE=10)
    with app.app_context():
        seed()
    with serve(app) as base:
        yield app, base


@pytest.fixture
def page(browser, dashboard):
    """A signed-in page that records every request it makes."""
    _app, base = dashboard
    with signed_in_tab(browser, base) as tab:
        yield tab

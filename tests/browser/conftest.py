"""Pages in headless Chromium (Playwright), against the app served on loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.support import PASSWORD, USERNAME, serve, signed_in_tab
from tracker.auth.models import User
from tracker.extensions import db
from tracker.instances.models import CrawlResult, DailyValue, Instance
from tracker.instances.tallies import rebuild_daily_totals

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
    user = User(username=USERNAME, role="admin")
    user.set_password(PASSWORD)
    db.session.add(user)
    db.session.flush()
    # Daily values added directly, as a bulk load would: their totals too.
    rebuild_daily_totals(db.session)
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


LONG_ERROR = (
    "HTTPSConnectionPool(host='site03.example.org', port=443): Max retries exceeded "
    "with url: /api/instance-info (Caused by ConnectTimeoutError)"
)


def seed_synced_records(tablet, laptop, now: datetime) -> None:
    """Households and members two producers sent, and conflicts between them:
    one open on a household's village, one resolved on a member's household."""
    from sync.models import SyncConflict, SyncRecord

    db.session.flush()
    in_h1 = {"model": "Household", "natural_key": ["KSM-0001"]}
    in_h2 = {"model": "Household", "natural_key": ["KSM-0002"]}
    applied = int(now.timestamp() * 1000)
    for number, village in ((1, "Kisumu Ndogo"), (2, "Manyatta B")):
        db.session.add(
            SyncRecord(
                model="Household",
                natural_key=f'["KSM-{number:04d}"]',
                fields={"code": f"KSM-{number:04d}", "village": village, "size": 5},
                parents={},
                # The field's last change: the producer, its sequence, made, applied.
                changes={"village": [laptop.id, number, applied, applied]},
                version=2,
                producer_id=laptop.id,
                sequence=number,
            )
        )
    db.session.add(
        SyncRecord(
            model="Member",
            natural_key='["KSM-0001-01"]',
            fields={"identifier": "KSM-0001-01", "household_id": 2, "name": "Achieng"},
            parents={"household_id": in_h2},
            version=2,
            producer_id=tablet.id,
            sequence=3,
        )
    )
    common = {
        "applied_made": now - timedelta(hours=3),
        "other_made": now - timedelta(hours=5),
        "other_applied": now - timedelta(hours=2),
        "detected": now - timedelta(hours=1),
    }
    db.session.add(
        SyncConflict(
            model="Household",
            natural_key='["KSM-0001"]',
            field="village",
            applied_value="Kisumu Ndogo",
            applied_producer_id=laptop.id,
            applied_sequence=1,
            other_value="Kisumu Ndogo Estate, behind the dispensary",
            other_producer_id=tablet.id,
            other_sequence=7,
            **common,
        )
    )
    db.session.add(
        SyncConflict(
            model="Member",
            natural_key='["KSM-0001-01"]',
            field="household_id",
            applied_value=2,
            applied_parent=in_h2,
            applied_producer_id=tablet.id,
            applied_sequence=3,
            other_value=1,
            other_parent=in_h1,
            other_producer_id=laptop.id,
            other_sequence=9,
            status="resolved",
            resolution="keep_applied",
            resolved=now,
            **common,
        )
    )


def seed_domains() -> dict[str, object]:
    """A crawl run with failures, a quota with clients, sync producers and
    KEP 5's allocation site beside the seeded instances; return the ids pages
    take in their URLs."""
    from quota.models import ControllerQuota, QuotaClient, QuotaHistory
    from sync.producers import register_producer
    from tests.allocation.example import build_kep_site
    from tracker.batch.models import BatchItem, BatchOperation

    now = datetime.now(UTC)
    instances = db.session.scalars(select(Instance).order_by(Instance.id)).all()
    run = BatchOperation(
        operation_type="crawl",
        scope="all",
        status="finished",
        result="partial",
        created=now - timedelta(minutes=5),
        started=now - timedelta(minutes=5),
        finished=now - timedelta(minutes=4),
        total=len(instances),
        done=len(instances) - 4,
        failed=4,
    )
    db.session.add(run)
    db.session.flush()
    for index, instance in enumerate(instances):
        failed = index < 4
        db.session.add(
            BatchItem(
                batch_operation_id=run.id,
                item_id=instance.id,
                outcome="failed" if failed else "done",
                error=LONG_ERROR if failed else "",
            )
        )
    quota = ControllerQuota(
        record_kind="household-visit",
        target=1000,
        window_start=now - timedelta(days=10),
        window_expires=now + timedelta(days=80),
    )
    db.session.add(quota)
    db.session.flush()
    for index in range(6):
        client = QuotaClient(
            quota_id=quota.id,
            name=f"clinic-laptop-{index:02d}",
            endpoint=f"https://clinic{index:02d}.example.org/quota",
            secret="s" * 32,
            acknowledged=150,
            count=20 * index,
            last_contact=now - timedelta(hours=index),
            last_error=LONG_ERROR if index == 5 else "",
        )
        db.session.add(client)
        db.session.flush()
        db.session.add(
            QuotaHistory(
                quota_id=quota.id,
                client_id=client.id,
                event="pulled",
                count=20 * index,
                ceiling=150,
                detail="",
            )
        )
    producer, _credential, _key = register_producer(
        db.session, "tablet-kisumu-0001", "Field tablet, Kisumu district team"
    )
    laptop, _credential, _key = register_producer(
        db.session, "laptop-manaus-02", "Clinic laptop", encrypt=True
    )
    seed_synced_records(producer, laptop, now)
    ids = build_kep_site()
    db.session.commit()
    return {
        "uuid": instances[0].uuid,
        "number": instances[0].id,
        "operation_id": run.id,
        "producer_id": producer.producer_id,
        "pool_id": ids["q1pd"],
        "project_id": ids["ProjectD"],
        # The records pages of one kind (projects) and one of its records.
        "name": "projects",
        "model": "Household",
        "item_id": ids["ProjectD"],
    }


def served_with_every_page(make_app, **settings):
    """The app with every domain's pages holding data, served on loopback;
    yields (app, base URL, the ids that the pages' URLs take)."""
    app = make_app(CRAWLED_FIELDS_SETTINGS=FIELDS, DASHBOARD_PAGE_SIZE=10, **settings)
    with app.app_context():
        seed()
        ids = seed_domains()
    with serve(app) as base:
        yield app, base, ids


@pytest.fixture
def every_page(make_app):
    """Every page holding data, in English."""
    yield from served_with_every_page(make_app)


@pytest.fixture
def every_page_in_french(make_app):
    """Every page holding data, with French as the dashboard's language."""
    yield from served_with_every_page(make_app, BABEL_DEFAULT_LOCALE="fr")

"""Crawl runs stored in the database: health, history, merging, location, approval."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from tests.fleet import HANG, JSON, STATUS, Behaviour, Fleet
from tracker.batch.models import BatchOperation
from tracker.extensions import db
from tracker.instances.crawler import CrawlOutcome, CrawlSettings, EndpointResult
from tracker.instances.crawling import crawl_chunk
from tracker.instances.geo import Locator
from tracker.instances.models import CrawlResult, Instance
from tracker.instances.recording import record_outcomes

ENDPOINTS = [
    {"url": "/system-info", "headers": {"Authorization": "Bearer crawl-secret"}},
    {"url": "/stats"},
]
CRAWL_SETTINGS = {
    "CRAWLING_ENDPOINTS": ENDPOINTS,
    "CRAWL_DENY_NETWORKS": [],
    "CRAWL_TIMEOUT": 1.5,
    "CRAWL_CONNECT_TIMEOUT": 1.0,
}


@pytest.fixture
def fleet():
    behaviours = {
        "127.0.20.1": Behaviour(
            JSON,
            data={"version": "3.3"},
            paths={"/stats": Behaviour(JSON, data={"users": 7})},
        ),
        "127.0.20.2": Behaviour(STATUS, status=500),
        "127.0.20.3": Behaviour(HANG),
    }
    with Fleet(behaviours) as running:
        yield running


@pytest.fixture
def crawl_app(make_app):
    return make_app(**CRAWL_SETTINGS)


def add_instance(url: str, **fields) -> int:
    instance = Instance(
        url=url, contact="C", email="c@example.org", organisation="O", approved=True
    )
    for name, value in fields.items():
        setattr(instance, name, value)
    db.session.add(instance)
    db.session.commit()
    return instance.id


def run_chunk(app, ids, require_approval=False):
    settings = CrawlSettings.from_config(app.config)
    return crawl_chunk(
        db.session, None, ids, settings, Locator(), require_approval, db.session.commit
    )


def test_health_values_and_history_are_stored(crawl_app, fleet):
    with crawl_app.app_context():
        ids = [add_instance(fleet.url(f"127.0.20.{n}")) for n in (1, 2, 3)]
        counts = run_chunk(crawl_app, ids)
        assert (counts.up, counts.down, counts.skipped) == (1, 2, 0)

        up, broken, hanging = (db.session.get(Instance, i) for i in ids)
        assert up.health == "up"
        assert up.crawled == {"version": "3.3", "users": 7}
        assert up.last_success == up.last_attempt
        assert up.last_status == 200
        assert up.address == "127.0.20.1"
        assert up.country_code is None  # a private address: Unknown
        assert broken.health == "down"
        assert broken.last_status == 500
        assert "HTTP 500" in broken.last_error
        assert broken.last_success is None
        assert hanging.health == "down"
        assert "timed out" in hanging.last_error
        assert hanging.last_duration_ms >= 1400

        history = db.session.scalars(select(CrawlResult).order_by(CrawlResult.id)).all()
        assert sorted((h.instance_id, h.health) for h in history) == sorted(
            zip(ids, ("up", "down", "down"), strict=True)
        )
        assert {h.instance_id: h.data for h in history}[ids[0]] == {
            "version": "3.3",
            "users": 7,
        }


def test_a_failing_endpoint_keeps_its_previous_values(crawl_app, fleet):
    with crawl_app.app_context():
        instance_id = add_instance(fleet.url("127.0.20.1"))
        run_chunk(crawl_app, [instance_id])
        fleet.behaviours["127.0.20.1"] = Behaviour(
            JSON,
            data={"version": "3.4"},
            paths={"/stats": Behaviour(STATUS, status=503)},
        )
        run_chunk(crawl_app, [instance_id])
        instance = db.session.get(Instance, instance_id)
        assert instance.crawled == {"version": "3.4", "users": 7}
        assert instance.health == "up"
        assert instance.last_error == "/stats: HTTP 503"
        assert db.session.scalar(select(func.count(CrawlResult.id))) == 2


def test_disabled_and_unapproved_instances_are_skipped_and_get_no_headers(
    crawl_app, fleet
):
    with crawl_app.app_context():
        disabled = add_instance(fleet.url("127.0.20.1"), enabled=False)
        waiting = add_instance(fleet.url("127.0.20.2"), approved=False)
        fleet.seen.clear()
        counts = run_chunk(crawl_app, [disabled, waiting], require_approval=True)
        assert counts.skipped == 2
        assert fleet.seen == []
        assert db.session.get(Instance, waiting).health == "unknown"


def test_public_address_gets_a_location_and_manual_one_is_kept(crawl_app):
    with crawl_app.app_context():
        located = add_instance("http://a.example.org")
        manual = add_instance(
            "http://b.example.org",
            location_manual=True,
            country_code="KE",
            city="Kisumu",
            latitude=-0.1,
            longitude=34.75,
        )
        now = datetime.now(UTC)
        outcomes = [
            CrawlOutcome(
                i, now, 20, "up", 200, "", (EndpointResult("", {}, 200, ""),), a
            )
            for i, a in ((located, "81.2.69.160"), (manual, "8.8.8.8"))
        ]
        record_outcomes(db.session, outcomes, (), Locator())
        db.session.commit()
        first = db.session.get(Instance, located)
        assert (first.country_code, first.city) == ("GB", "Willesden")
        second = db.session.get(Instance, manual)
        assert (second.country_code, second.city, second.latitude) == (
            "KE",
            "Kisumu",
            -0.1,
        )


def test_manage_crawl_reports_a_summary(crawl_app, fleet):
    with crawl_app.app_context():
        for n in (1, 2):
            add_instance(fleet.url(f"127.0.20.{n}"))
    from tracker.cli import cli

    result = crawl_app.test_cli_runner().invoke(cli, ["crawl"])
    assert result.exit_code == 0, result.output
    assert "Crawled 2 instances: 1 up, 1 down, 0 skipped" in result.output
    with crawl_app.app_context():
        operation = db.session.scalar(select(BatchOperation))
        # Every instance was attempted: a down host is an outcome, not a fault.
        assert (operation.status, operation.result) == ("finished", "successful")
        assert (operation.total, operation.done, operation.failed) == (2, 1, 1)


def test_manage_crawl_one_instance_and_bad_uuid(crawl_app, fleet):
    from tracker.cli import cli

    with crawl_app.app_context():
        add_instance(fleet.url("127.0.20.1"))
        uuid = db.session.scalar(select(Instance.uuid))
    runner = crawl_app.test_cli_runner()
    result = runner.invoke(cli, ["crawl", uuid])
    assert "Crawled 1 instances: 1 up, 0 down, 0 skipped" in result.output
    result = runner.invoke(cli, ["crawl", "not-a-uuid"])
    assert result.exit_code == 2
    assert "no instance with this uuid" in result.output


def test_api_crawl_answers_202_with_an_operation(crawl_app, fleet, token):
    client = crawl_app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    with crawl_app.app_context():
        add_instance(fleet.url("127.0.20.1"))
        uuid = db.session.scalar(select(Instance.uuid))
    response = client.post("/api/instances/crawl", headers=headers)
    assert response.status_code == 202
    operation = response.get_json()
    assert operation["status"] == "unprocessed"
    status = client.get(response.headers["Location"], headers=headers)
    assert status.get_json()["id"] == operation["id"]

    again = client.post("/api/instances/crawl", headers=headers)
    assert again.status_code == 409
    assert again.get_json()["batch_operation_id"] == operation["id"]

    one = client.post(f"/api/instances/{uuid}/crawl", headers=headers)
    assert one.status_code == 202
    assert one.get_json()["scope"].startswith("instance:")
    assert client.post("/api/instances/crawl").status_code == 401
    missing = client.post("/api/instances/nope/crawl", headers=headers)
    assert missing.status_code == 404


def test_charted_line_fields_keep_one_value_per_instance_and_day(make_app, fleet):
    from tracker.instances.models import DailyValue
    from tracker.instances.tasks import daily_fields_from_config

    fields = {
        "users": {"chart": True, "chart_type": "line", "chart_aggregation": "sum"}
    }
    app = make_app(**CRAWL_SETTINGS, CRAWLED_FIELDS_SETTINGS=fields)
    with app.app_context():
        instance_id = add_instance(fleet.url("127.0.20.1"))
        settings = CrawlSettings.from_config(app.config)
        for users in (7, 9):
            fleet.behaviours["127.0.20.1"] = Behaviour(
                JSON,
                data={"version": "3.3"},
                paths={"/stats": Behaviour(JSON, data={"users": users})},
            )
            crawl_chunk(
                db.session,
                None,
                [instance_id],
                settings,
                Locator(),
                False,
                db.session.commit,
                daily_fields=daily_fields_from_config(app.config),
            )
        values = db.session.scalars(select(DailyValue)).all()
        assert [(v.field, v.instance_id, v.value) for v in values] == [
            ("users", instance_id, 9.0)
        ]
        from tracker.instances.charts import field_settings
        from tracker.instances.statistics import gather

        chart = gather(db.session, field_settings(fields))["charts"][0]
        assert chart["values"] == [9.0]
        assert chart["type"] == "line"


def test_crawl_headers_go_only_to_approved_instances(crawl_app, fleet):
    with crawl_app.app_context():
        waiting = add_instance(fleet.url("127.0.20.1"), approved=False)
        approved = add_instance(fleet.url("127.0.20.2"))
        fleet.seen.clear()
        # Without CRAWL_REQUIRE_APPROVAL the unapproved one is crawled too.
        counts = run_chunk(crawl_app, [waiting, approved])
        assert counts.up + counts.down == 2
        tokens = {
            seen.address: seen.headers.get("Authorization")
            for seen in fleet.seen
            if seen.path == "/system-info"
        }
        assert tokens == {"127.0.20.1": None, "127.0.20.2": "Bearer crawl-secret"}
        assert db.session.get(Instance, waiting).health == "up"

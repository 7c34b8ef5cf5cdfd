"""The statistics' totals, kept as instances change, always equal what folding
every instance and daily value gives: through registrations, crawls and
re-crawls, heartbeats, disables, hand-set locations, deletes and pruning."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select

from tracker.extensions import db
from tracker.instances.charts import (
    Row,
    chart_series,
    field_settings,
    registrations_series,
)
from tracker.instances.crawler import CrawlOutcome, CrawlSettings, EndpointResult
from tracker.instances.crawling import prune_history
from tracker.instances.geo import Locator
from tracker.instances.models import (
    ChartBuilt,
    ChartEntry,
    ChartTotal,
    DailyValue,
    Instance,
)
from tracker.instances.recording import record_outcomes
from tracker.instances.statistics import HISTORY_DAYS, gather
from tracker.instances.tallies import configured_charts

FIELDS = {
    "version": {"chart": True, "chart_type": "pie"},
    "modules": {"chart": True},
    "events": {
        "chart": True,
        "chart_aggregation": "sum",
        "chart_aggregate_by": "country",
    },
    "rooms": {
        "chart": True,
        "aggregation": "sum",
        "chart_aggregation": "avg",
        "chart_aggregate_by": "version",
    },
    "users": {"chart": True, "chart_type": "line", "chart_aggregation": "sum"},
    "load": {"chart": True, "chart_type": "line", "chart_aggregation": "avg"},
    "seen": {"chart": True, "chart_type": "line", "chart_aggregation": "count"},
}
SETTINGS = {
    "CRAWLED_FIELDS_SETTINGS": FIELDS,
    "CRAWLING_ENDPOINTS": [{"url": "/stats"}],
    "API_REGISTRATION_RATE_LIMIT": None,
    "API_HEARTBEAT_RATE_LIMIT": None,
}
REGISTRATION = {"contact": "C", "email": "c@example.org", "organisation": "O"}


def folded_statistics() -> dict:
    """The page's numbers folded from every row, as the page once did."""
    fields = field_settings(FIELDS)
    instances = db.session.scalars(select(Instance)).all()
    rows = [Row(i.crawled or {}, i.country_name) for i in instances if i.enabled]
    since = (datetime.now(UTC) - timedelta(days=HISTORY_DAYS)).date()
    per_day: dict = defaultdict(lambda: defaultdict(list))
    for value in db.session.scalars(select(DailyValue)):
        if value.day >= since:
            per_day[value.field][value.day].append(value.value)
    charts = []
    for setting in fields.values():
        if setting.chart_type != "line":
            charts.append(chart_series(rows, setting, fields))
            continue
        labels, values = [], []
        for day, day_values in sorted(per_day[setting.name].items()):
            numbers = [v for v in day_values if v is not None]
            how = setting.chart_aggregation
            if how == "count":
                value = len(day_values)
            elif not numbers:
                continue
            else:
                value = sum(numbers) / (len(numbers) if how == "avg" else 1)
            labels.append(day.isoformat())
            values.append(round(value, 4))
        charts.append(
            {
                "field": setting.name,
                "label": setting.label,
                "type": "line",
                "aggregation": setting.chart_aggregation,
                "labels": labels,
                "values": values,
            }
        )
    return {
        "charts": charts,
        "registrations": registrations_series(i.registered for i in instances),
    }


def assert_totals_are_exact(app) -> None:
    with app.app_context():
        fields = field_settings(FIELDS)
        kept = gather(db.session, fields)
        expected = folded_statistics()
        assert kept["charts"] == expected["charts"]
        assert kept["registrations"] == expected["registrations"]
        # Built again from scratch, the totals are the same.
        db.session.execute(delete(ChartBuilt))
        db.session.commit()
        assert gather(db.session, fields)["charts"] == expected["charts"]


def crawl(app, answers: dict[int, dict], started: datetime, address=None) -> None:
    """Record one up crawl of each instance, answering ``answers[id]``."""
    endpoints = CrawlSettings.from_config(app.config).endpoints
    outcomes = [
        CrawlOutcome(
            instance_id,
            started,
            20,
            "up",
            200,
            "",
            (EndpointResult(endpoints[0].path, data, 200, ""),),
            address,
        )
        for instance_id, data in answers.items()
    ]
    record_outcomes(
        db.session,
        outcomes,
        endpoints,
        Locator(),
        daily_fields={"users": None, "load": None, "seen": None},
    )
    db.session.commit()


@pytest.fixture
def stats_app(make_app):
    return make_app(**SETTINGS)


def succeeds(response) -> None:
    assert response.status_code < 300, response.get_json()


def register(client) -> tuple[int, str]:
    answer = client.post("/api/instance/", json={**REGISTRATION, "url": "http://a.org"})
    uuid = answer.get_json()["uuid"]
    return db.session.scalar(select(Instance.id).where(Instance.uuid == uuid)), uuid


def test_totals_stay_exact_through_every_change(stats_app, token):
    app, client = stats_app, stats_app.test_client()
    admin = {"Authorization": f"Bearer {token}"}
    assert_totals_are_exact(app)  # built while there is nothing to count
    with app.app_context():
        registered = [register(client) for _ in range(5)]
    ids = [instance_id for instance_id, _ in registered]
    uuids = [uuid for _, uuid in registered]
    assert_totals_are_exact(app)  # five Unknowns

    now = datetime.now(UTC)
    with app.app_context():
        crawl(
            app,
            {
                ids[0]: {"version": "3.1", "modules": ["a", "b"], "events": 3},
                ids[1]: {"version": 3.1, "events": 2.5, "rooms": [1, 2], "users": 7},
                ids[2]: {"version": "3.2", "rooms": {"x": 4}, "users": 5, "load": 0.3},
            },
            now - timedelta(days=1),
            address="81.2.69.160",
        )
        crawl(app, {ids[3]: {"modules": ["a"], "users": "many"}}, now, "8.8.8.8")
    assert_totals_are_exact(app)

    with app.app_context():  # re-crawled: values change, the day's last wins
        crawl(
            app,
            {
                ids[0]: {"version": "3.2", "modules": ["b", None], "events": 4},
                ids[1]: {"version": 3.1, "events": 2.5, "rooms": [1, 2], "users": 9},
                ids[2]: {"version": "3.2", "rooms": [], "users": None, "load": 0.7},
            },
            now - timedelta(days=1),
        )
        crawl(app, {ids[1]: {"users": 1, "load": 0.1}}, now)
    assert_totals_are_exact(app)

    heartbeat = f"/api/instance/{uuids[4]}/heartbeat"
    assert (
        client.post(heartbeat, json={"version": "4.0", "users": 11}).status_code == 200
    )
    assert_totals_are_exact(app)

    # The client switches tracking off; an admin disables another, and back on.
    succeeds(client.patch(f"/api/instance/{uuids[0]}", json={"enabled": False}))
    assert_totals_are_exact(app)
    changes = f"/api/instances/{uuids[1]}"
    succeeds(client.patch(changes, json={"enabled": False}, headers=admin))
    assert_totals_are_exact(app)
    succeeds(client.patch(changes, json={"enabled": True}, headers=admin))
    assert_totals_are_exact(app)

    location = f"/api/instances/{uuids[1]}/location"
    pinned = {"country_code": "KE", "latitude": -0.1, "longitude": 34.75}
    succeeds(client.put(location, json=pinned, headers=admin))
    assert_totals_are_exact(app)
    succeeds(client.delete(location, headers=admin))
    assert_totals_are_exact(app)

    succeeds(client.delete(f"/api/instances/{uuids[2]}", headers=admin))
    succeeds(client.delete(f"/api/instances/{uuids[0]}", headers=admin))
    assert_totals_are_exact(app)

    with app.app_context():
        prune_history(db.session, keep_days=0)
        db.session.commit()
    assert_totals_are_exact(app)


def test_a_deleted_instance_leaves_nothing_behind(stats_app):
    app, client = stats_app, stats_app.test_client()
    with app.app_context():
        gather(db.session, field_settings(FIELDS))
        instance_id, _ = register(client)
        answer = {"version": "1", "events": 2, "users": 3}
        crawl(app, {instance_id: answer}, datetime.now(UTC))
    with app.app_context():
        db.session.delete(db.session.get(Instance, instance_id))
        db.session.commit()
        assert db.session.scalars(select(ChartEntry)).all() == []
        assert all(t.instances == 0 for t in db.session.scalars(select(ChartTotal)))
        charts = gather(db.session, field_settings(FIELDS))["charts"]
        assert all(chart["values"] == [] for chart in charts)


def test_a_changed_setting_builds_its_chart_afresh(make_app):
    first = make_app(**SETTINGS)
    with first.app_context():
        instance_id, _ = register(first.test_client())
        crawl(first, {instance_id: {"version": "1", "events": 2}}, datetime.now(UTC))
        events = gather(db.session, field_settings(FIELDS))["charts"][2]
        assert (events["labels"], events["values"]) == (["Unknown"], [2.0])
    fields = {**FIELDS, "events": {**FIELDS["events"], "chart_aggregate_by": "version"}}
    second = make_app(**{**SETTINGS, "CRAWLED_FIELDS_SETTINGS": fields})
    with second.app_context():
        events = gather(db.session, field_settings(fields))["charts"][2]
        assert (events["labels"], events["values"]) == (["1"], [2.0])
        keys = {chart.key for chart in configured_charts(second.config)}
        assert set(db.session.scalars(select(ChartEntry.chart))) <= keys

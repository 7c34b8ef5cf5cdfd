"""Health, readiness and Prometheus metrics, and the log line of an operation
that ended badly."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from quota.models import ControllerQuota, QuotaClient
from sync.models import SyncProducer
from tests.services import free_port, start_redis
from tests.support import REGISTRATION
from tracker import create_app
from tracker.batch import operations
from tracker.batch.models import RESULT_FAILED, RESULT_PARTIAL
from tracker.db_types import utcnow
from tracker.settings import SettingsError

UUID = "0b5e4f0e-3c1a-4c39-9b1e-6c2b0e6a5d11"


def samples(response) -> dict[tuple[str, tuple], float]:
    """The metrics page as {(sample name, sorted labels): value}."""
    text = response.get_data(as_text=True)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_healthz_and_readyz_answer_on_the_embedded_defaults(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "ok"}


def test_readyz_is_503_naming_a_database_that_cannot_be_reached(tmp_path):
    port = free_port()
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://x@127.0.0.1:{port}/x"},
        instance_path=tmp_path / "instance",
        environ={},
    )
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.headers["Retry-After"]
    assert ready.get_json()["problems"] == ["database unreachable: OperationalError"]


def test_readyz_follows_a_real_redis_broker(make_app):
    redis = start_redis()
    try:
        client = make_app(CELERY_BROKER_URL=redis.url).test_client()
        assert client.get("/readyz").status_code == 200
    finally:
        redis.stop()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["problems"] == ["broker unreachable: OperationalError"]


def test_metrics_are_served_only_to_the_allowed_networks(make_app):
    client = make_app(METRICS_ALLOW_NETWORKS=["10.1.0.0/16"]).test_client()
    assert client.get("/metrics").status_code == 403  # 127.0.0.1 is not in it
    inside = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert inside.status_code == 200
    assert inside.mimetype == "text/plain"


def test_the_default_networks_are_loopback_and_private(client):
    for address in ("127.0.0.1", "::1", "10.0.0.7", "192.168.1.5", "fd00::5"):
        answer = client.get("/metrics", environ_base={"REMOTE_ADDR": address})
        assert answer.status_code == 200
    for address in ("8.8.8.8", "2001:db8::1", "not-an-address"):
        answer = client.get("/metrics", environ_base={"REMOTE_ADDR": address})
        assert answer.status_code == 403


def test_metrics_networks_are_validated(tmp_path):
    with pytest.raises(SettingsError, match="METRICS_ALLOW_NETWORKS"):
        create_app(
            {"METRICS_ALLOW_NETWORKS": ["10.0.0.0/8", "the office"]},
            instance_path=tmp_path / "instance",
            environ={},
        )


def test_requests_are_counted_by_route_never_by_path(client):
    assert client.post("/api/instance/", json=REGISTRATION).status_code == 201
    client.get(f"/api/instance/{UUID}")
    client.get(f"/api/instance/{UUID}")
    response = client.get("/metrics")
    assert UUID not in response.get_data(as_text=True)
    found = samples(response)
    route = (("method", "GET"), ("route", "/api/instance/<uuid>"), ("status", "404"))
    assert found[("tracker_http_requests_total", route)] == 2
    created = (("method", "POST"), ("route", "/api/instance/"), ("status", "201"))
    assert found[("tracker_http_requests_total", created)] == 1
    latency = (("method", "GET"), ("route", "/api/instance/<uuid>"))
    assert found[("tracker_http_request_duration_seconds_count", latency)] == 2


def test_every_part_contributes_its_figures(client, db):
    client.post("/api/instance/", json=REGISTRATION)
    now = utcnow()
    with db.session() as session:
        session.add(
            SyncProducer(
                producer_id="laptop-7",
                public_key="k" * 64,
                highest_received=10,
                applied_through=4,
                last_contact=now - timedelta(minutes=5),
            )
        )
        quota = ControllerQuota(
            record_kind="visit",
            target=1000,
            window_start=now - timedelta(days=1),
            window_expires=now + timedelta(days=30),
        )
        session.add(quota)
        session.flush()
        for name, count, ceiling in (("clinic-1", 30, 400), ("clinic-2", 12, 500)):
            session.add(
                QuotaClient(
                    quota_id=quota.id,
                    name=name,
                    endpoint=f"http://{name}.example.org",
                    secret="s" * 40,
                    count=count,
                    acknowledged=ceiling,
                )
            )
        operations.record_skipped(session, "crawl", "all", "broker", RESULT_FAILED)
        session.commit()
    found = samples(client.get("/metrics"))
    health = (("enabled", "true"), ("health", "unknown"))
    assert found[("tracker_instances", health)] == 1
    assert found[("tracker_sync_lag_transactions", (("producer", "laptop-7"),))] == 6
    age = found[("tracker_sync_last_contact_age_seconds", (("producer", "laptop-7"),))]
    assert 300 <= age < 3600
    assert found[("tracker_quota_target", (("kind", "visit"),))] == 1000
    assert found[("tracker_quota_used", (("kind", "visit"),))] == 42
    assert found[("tracker_quota_ceilings", (("kind", "visit"),))] == 900
    assert found[("tracker_crawl_runs_total", (("result", "failed"),))] == 1
    crawl = (("result", "failed"), ("status", "finished"), ("type", "crawl"))
    assert found[("tracker_batch_operations", crawl)] == 1


def test_an_operation_ending_failed_or_partial_is_logged(db, caplog):
    with db.session() as session, caplog.at_level(logging.WARNING):
        good = operations.create_synchronous(session, "sync-import", "a")
        bad = operations.create_synchronous(session, "sync-import", "b")
        session.flush()
        bad_id = bad.id
        operations.finish(session, good.id)
        operations.finish(session, bad.id, result=RESULT_PARTIAL, error="2 rejected")
        session.commit()
    lines = [r.getMessage() for r in caplog.records if "batch operation" in r.msg]
    assert lines == [
        f"batch operation #{bad_id} sync-import (b) ended partial:"
        " 0 done, 0 failed, 0 skipped of 0; 2 rejected"
    ]

"""The crawler on Celery end to end: a real Redis, real workers and beat."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from tests.celery_processes import celery_environment, start_worker
from tests.fleet import JSON, Behaviour, Fleet
from tests.services import start_redis
from tracker.extensions import db

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def redis_server():
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture
def celery_setup(redis_server, database_url, tmp_path, make_app):
    """Settings shared by the test's app and the worker processes."""
    redis_server_url = redis_server.url
    # A fresh Redis database per test keeps queues from leaking between tests.
    import redis

    redis.Redis.from_url(redis_server_url).flushdb()
    settings = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "CELERY_BROKER_URL": redis_server_url,
        "SECRET_KEY": "tests-secret-of-at-least-thirty-two-bytes",
        "CRAWLING_ENDPOINTS": [{"url": "/system-info"}],
        "CRAWL_DENY_NETWORKS": [],
        "CRAWL_TIMEOUT": 2.0,
        "CRAWL_CONNECT_TIMEOUT": 1.0,
        "CRAWL_INTERVAL": 3,
        "HOUSEKEEPING_INTERVAL": 1,
        "BATCH_HEARTBEAT_TIMEOUT": 4,
    }
    app = make_app(**settings)
    env = celery_environment(settings, tmp_path / "instance")
    processes = []
    yield app, env, processes
    for process in processes:
        process.stop()


def wait_until(predicate, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def api_token(app) -> str:
    from tracker.auth.models import User
    from tracker.auth.tokens import issue_token

    with app.app_context():
        user = User(username="ops", role="admin")
        user.set_password("pw")
        db.session.add(user)
        token = issue_token(db.session, user)
        db.session.commit()
    return token


def operations_of(app, scope="all"):
    from tracker.batch.models import BatchOperation

    with app.app_context():
        db.session.expire_all()
        return db.session.scalars(
            select(BatchOperation)
            .where(
                BatchOperation.operation_type == "crawl", BatchOperation.scope == scope
            )
            .order_by(BatchOperation.id)
        ).all()


def test_scheduled_crawl_end_to_end(celery_setup, tmp_path):
    app, env, processes = celery_setup
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token(app)}"}
    behaviours = {"127.0.30.1": Behaviour(JSON, data={"version": "3.3", "users": 9})}
    with Fleet(behaviours) as fleet:
        registration = {
            "url": fleet.url("127.0.30.1"),
            "contact": "Ada",
            "email": "ada@example.org",
            "organization": "CERN",
        }
        uuid = client.post("/api/instance/", json=registration).get_json()["uuid"]
        processes.append(
            start_worker(env, tmp_path / "worker.log", beat=tmp_path / "beat-schedule")
        )

        def crawled():
            items = client.get("/api/instances", headers=headers).get_json()["items"]
            return items and items[0]["health"] == "up" and items[0]

        instance = wait_until(crawled, timeout=40)
        assert instance["uuid"] == uuid
        assert instance["crawled"] == {"version": "3.3", "users": 9}
        assert instance["last_status"] == 200

        finished = wait_until(
            lambda: [o for o in operations_of(app) if o.status == "finished"],
            timeout=20,
        )
        assert finished[0].result == "successful"
        assert (finished[0].total, finished[0].done) == (1, 1)
        response = client.get(
            f"/api/batch-operations/{finished[0].id}", headers=headers
        )
        assert response.get_json()["result"] == "successful"


def test_the_run_of_a_killed_worker_is_resumed_and_the_next_run_completes(
    celery_setup, tmp_path
):
    app, env, processes = celery_setup
    env = {
        **env,
        "TRACKER_CRAWL_CONCURRENCY": "4",
        "TRACKER_CRAWL_CHUNK_SIZE": "8",
        "TRACKER_CRAWL_INTERVAL": "3600",
    }
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token(app)}"}
    addresses = [f"127.0.31.{n}" for n in range(1, 25)]
    slow = Behaviour(JSON, delay=1.5, data={"version": "slow"})
    with Fleet(dict.fromkeys(addresses, slow)) as fleet:
        for address in addresses:
            client.post(
                "/api/instance/",
                json={
                    "url": fleet.url(address),
                    "contact": "A",
                    "email": "a@example.org",
                    "organisation": "O",
                },
            )
        worker = start_worker(env, tmp_path / "worker-1.log", concurrency=1)
        processes.append(worker)
        started = client.post("/api/instances/crawl", headers=headers)
        assert started.status_code == 202
        operation_id = started.get_json()["id"]

        def progressing():
            body = client.get(f"/api/batch-operations/{operation_id}", headers=headers)
            return body.get_json()["progress"]["done"] >= 4

        wait_until(progressing, timeout=30)
        worker.kill()

        # A new worker with beat: housekeeping notices the stopped heartbeat
        # and re-sends the chunks of the instances not attempted.
        for address in addresses:
            fleet.behaviours[address] = Behaviour(JSON, data={"version": "fast"})
        processes.append(
            start_worker(
                env, tmp_path / "worker-2.log", beat=tmp_path / "beat-schedule"
            )
        )

        def closed():
            body = client.get(f"/api/batch-operations/{operation_id}", headers=headers)
            return body.get_json()["status"] == "finished" and body.get_json()

        killed_run = wait_until(closed, timeout=40)
        assert killed_run["result"] == "successful"
        assert killed_run["progress"]["done"] == len(addresses)

        again = client.post("/api/instances/crawl", headers=headers)
        assert again.status_code == 202, again.get_json()

        def completed():
            body = client.get(
                f"/api/batch-operations/{again.get_json()['id']}", headers=headers
            ).get_json()
            return body["status"] == "finished" and body

        next_run = wait_until(completed, timeout=40)
        assert next_run["result"] == "successful"
        assert next_run["progress"]["done"] == len(addresses)
        items = client.get("/api/instances?per_page=100", headers=headers).get_json()
        assert {item["crawled"]["version"] for item in items["items"]} == {"fast"}

"""Queues: crawl chunks have a queue of their own, so periodic jobs never wait
behind them; ``manage.py runworker --queues --name`` picks what a worker takes."""

from __future__ import annotations

import sys
import time

import pytest
import redis as redis_client
from sqlalchemy import select

from tests.celery_processes import ROOT, CeleryProcess, celery_environment
from tests.fleet import JSON, Behaviour, Fleet
from tests.services import start_redis
from tests.support import REGISTRATION

pytestmark = pytest.mark.slow


def wait_until(predicate, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout} s")


def runworker(env, log, *options) -> CeleryProcess:
    """``manage.py runworker 1 OPTIONS`` as an operator starts it."""
    command = [sys.executable, str(ROOT / "manage.py"), "runworker", "1", *options]
    worker = CeleryProcess([], env, log, command=command)
    worker.wait_for("ready.")
    return worker


def test_periodic_jobs_run_while_crawl_chunks_wait_on_their_queue(
    make_app, database_url, tmp_path
):
    from tracker.batch.models import BatchOperation
    from tracker.extensions import db
    from tracker.housekeeping import housekeeping
    from tracker.instances.crawling import SCOPE_ALL
    from tracker.instances.launch import launch_crawl

    server = start_redis()
    workers = []
    settings = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "CELERY_BROKER_URL": server.url,
        "SECRET_KEY": "queue-tests-secret-of-32-bytes-or-more",
        "CRAWLING_ENDPOINTS": [{"url": "/info"}],
        "CRAWL_DENY_NETWORKS": [],
        "CRAWL_TIMEOUT": 2.0,
        "CRAWL_CONNECT_TIMEOUT": 1.0,
    }
    app = make_app(**settings)
    env = celery_environment(settings, tmp_path / "instance")
    broker = redis_client.Redis.from_url(server.url)

    def operation(kind: str):
        with app.app_context():
            return db.session.scalar(
                select(BatchOperation).where(BatchOperation.operation_type == kind)
            )

    try:
        with Fleet({"127.0.31.1": Behaviour(JSON, data={"v": 1})}) as fleet:
            registration = {**REGISTRATION, "url": fleet.url("127.0.31.1")}
            client = app.test_client()
            assert client.post("/api/instance/", json=registration).status_code == 201
            workers.append(
                runworker(
                    env, tmp_path / "periodic.log", "--queues", "celery", "--name", "p1"
                )
            )
            assert "p1@" in workers[0].output()
            with app.app_context():
                launch_crawl(SCOPE_ALL)
            # The run starts on the periodic worker; its chunk waits for a crawler.
            wait_until(lambda: broker.llen("crawl") == 1)
            with app.app_context():
                housekeeping.delay()
            wait_until(
                lambda: getattr(operation("housekeeping"), "status", "") == "finished"
            )
            assert operation("crawl").status == "running"
            workers.append(runworker(env, tmp_path / "crawl.log", "--queues", "crawl"))
            wait_until(lambda: operation("crawl").status == "finished")
            assert (operation("crawl").result, operation("crawl").done) == (
                "successful",
                1,
            )
    finally:
        for worker in workers:
            worker.stop()
        server.stop()


def test_a_worker_started_without_queues_takes_them_all(app):
    from tracker.background import queue_names

    celery = app.extensions["celery"]
    assert queue_names(celery) == ["celery", "crawl"]
    route = celery.amqp.router.route(
        {}, "tracker.instances.tasks.crawl_instances_chunk"
    )
    assert route["queue"].name == "crawl"

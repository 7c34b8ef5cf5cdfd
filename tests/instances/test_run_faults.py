"""Crawl runs that survive faults and say truthfully what they did.

Real Redis, real workers and beat, and a PostgreSQL of this module's own (one
test stops it mid-run). A worker group killed, a cold shutdown, a pool process
killed, Redis restarted, PostgreSQL stopped and started: each time, at the end,
every crawlable instance was attempted once for the run and
done + failed + skipped == total exactly.
"""

from __future__ import annotations

import itertools
import re
import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.celery_processes import celery_environment, start_beat, start_worker
from tests.fleet import JSON, STATUS, Behaviour, Fleet
from tests.services import RedisServer, free_port, start_postgres, start_redis
from tracker.batch import operations
from tracker.batch.models import BatchOperation
from tracker.db_types import utcnow
from tracker.extensions import db
from tracker.instances.models import CrawlResult, Instance

pytestmark = pytest.mark.slow

INSTANCES = 250
DOWN_EVERY = 10  # every tenth instance answers 500: down, an outcome
DISABLED = 3  # registered, disabled: not part of any run
RUN_SETTINGS = {
    "SECRET_KEY": "tests-secret-of-at-least-thirty-two-bytes",
    "CRAWLING_ENDPOINTS": [{"url": "/system-info"}],
    "CRAWL_DENY_NETWORKS": [],
    "CRAWL_TIMEOUT": 2.0,
    "CRAWL_CONNECT_TIMEOUT": 1.0,
    "CRAWL_CONCURRENCY": 10,
    "CRAWL_CHUNK_SIZE": 25,
    "CRAWL_INTERVAL": 3600,
    "HOUSEKEEPING_INTERVAL": 1,
    "BATCH_HEARTBEAT_TIMEOUT": 4,
    "BATCH_MAX_RESUMES": 10,
}
_names = itertools.count()


@pytest.fixture(scope="module")
def cluster():
    """A PostgreSQL for this module alone: a test stops and starts it."""
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture
def database_url(cluster, tmp_path):
    """Runs here use PostgreSQL, as production does: a database holding every
    table on this module's cluster (overrides the suite's fixture)."""
    from tracker import create_app
    from tracker.models import import_all_models

    name = f"run_faults_{next(_names)}"
    cluster.admin(f"CREATE DATABASE {name}")
    url = cluster.url(name)
    schema_app = create_app(
        {"SQLALCHEMY_DATABASE_URI": url, "TESTING": True},
        instance_path=tmp_path / "schema",
        environ={},
    )
    with schema_app.app_context():
        import_all_models()
        db.create_all()
        db.engine.dispose()
    yield url
    cluster.admin(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def redis_server():
    server = start_redis()
    yield server
    server.stop()


def restart_redis(server: RedisServer) -> RedisServer:
    """Stop Redis (losing every queued message) and start it on its port."""
    server.process.terminate()
    server.process.wait(timeout=10)
    options = ["--bind", "127.0.0.1", "--port", str(server.port)]
    options += ["--dir", str(server.directory), "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        ["redis-server", *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server.process = process
    return server


def wait_until(predicate, timeout: float = 120, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


class Run:
    """An app, the workers' environment, a fleet and its instances."""

    def __init__(self, app, env, fleet, crawlable, down, tmp_path):
        self.app, self.env, self.fleet = app, env, fleet
        self.crawlable, self.down = crawlable, down
        self.tmp_path = tmp_path
        self.processes = []

    def worker(self, name: str, concurrency: int = 2):
        worker = start_worker(self.env, self.tmp_path / f"{name}.log", concurrency)
        self.processes.append(worker)
        return worker

    def beat(self):
        beat = start_beat(
            self.env, self.tmp_path / "beat.log", self.tmp_path / "beat-schedule"
        )
        self.processes.append(beat)
        return beat

    def started_mid_run(self, processed: int = 40):
        """Start two workers and beat, launch a run and wait until it is under
        way; return the workers and the run's id."""
        workers = self.worker("worker-a"), self.worker("worker-b")
        self.beat()
        operation_id = self.launch()
        wait_until(lambda: self.processed(operation_id) >= processed)
        return workers, operation_id

    def launch(self) -> int:
        from tracker.instances.crawling import SCOPE_ALL
        from tracker.instances.launch import launch_crawl

        with self.app.app_context():
            return launch_crawl(SCOPE_ALL).id

    def operation(self, operation_id: int) -> BatchOperation:
        with self.app.app_context():
            db.session.expire_all()
            operation = db.session.get(BatchOperation, operation_id)
            db.session.expunge(operation)
            return operation

    def processed(self, operation_id: int) -> int:
        return self.operation(operation_id).processed

    def finished(self, operation_id: int, timeout: float = 150) -> BatchOperation:
        def done():
            operation = self.operation(operation_id)
            return not operation.is_active and operation

        return wait_until(done, timeout)

    def logs(self) -> str:
        return "\n".join(p.output() for p in self.processes)

    def assert_exact(self, operation_id: int) -> BatchOperation:
        """Every crawlable instance attempted once for the run; exact counts."""
        operation = self.finished(operation_id)
        assert (operation.status, operation.result) == ("finished", "successful"), (
            operation.error,
            operation.fault,
        )
        assert operation.total == len(self.crawlable)
        assert operation.done + operation.failed + operation.skipped == operation.total
        assert (operation.done, operation.failed, operation.skipped) == (
            len(self.crawlable) - len(self.down),
            len(self.down),
            0,
        )
        with self.app.app_context():
            attempts = db.session.execute(
                select(CrawlResult.instance_id, CrawlResult.health).where(
                    CrawlResult.batch_operation_id == operation_id
                )
            ).all()
            assert sorted(i for i, _ in attempts) == sorted(self.crawlable)
            assert {i for i, health in attempts if health == "down"} == self.down
            assert operations.pending_items(db.session, operation_id) == []
        return operation


@pytest.fixture
def run_setup(redis_server, database_url, tmp_path, make_app):
    """Build a Run on the loopback addresses 127.0.<subnet>.1-250."""
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    runs: list[Run] = []
    fleets: list[Fleet] = []

    def build(subnet: int, **overrides) -> Run:
        settings = {
            **RUN_SETTINGS,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "CELERY_BROKER_URL": redis_server.url,
            **overrides,
        }
        app = make_app(**settings)
        addresses = [f"127.0.{subnet}.{n}" for n in range(1, INSTANCES + 1)]
        behaviours = {
            address: (
                Behaviour(STATUS, status=500, delay=0.3)
                if n % DOWN_EVERY == 0
                else Behaviour(JSON, delay=0.6, data={"version": "3.3"})
            )
            for n, address in enumerate(addresses, 1)
        }
        fleet = Fleet(behaviours).start()
        fleet.record = False
        fleets.append(fleet)
        crawlable, down = [], set()
        with app.app_context():
            for n, address in enumerate(addresses, 1):
                instance = Instance(
                    url=fleet.url(address),
                    contact="C",
                    email="c@example.org",
                    organisation="O",
                    approved=True,
                    enabled=n > DISABLED,
                )
                db.session.add(instance)
                db.session.flush()
                if instance.enabled:
                    crawlable.append(instance.id)
                    if n % DOWN_EVERY == 0:
                        down.add(instance.id)
            db.session.commit()
        env = celery_environment(settings, tmp_path / "instance")
        run = Run(app, env, fleet, crawlable, down, tmp_path)
        runs.append(run)
        return run

    yield build
    for run in runs:
        for process in run.processes:
            process.stop()
    for fleet in fleets:
        fleet.stop()


def test_a_worker_group_killed_mid_run(run_setup):
    run = run_setup(50)
    (killed, survivor), operation_id = run.started_mid_run()
    killed.kill()  # SIGKILL to the main process and its pool: nothing acks
    run.assert_exact(operation_id)
    assert survivor.process.poll() is None


def test_a_cold_shutdown_mid_run(run_setup):
    # No re-send by housekeeping: the broker itself hands the chunks on.
    run = run_setup(51, BATCH_MAX_RESUMES=0)
    (stopped, _), operation_id = run.started_mid_run()
    stopped.signal(signal.SIGQUIT)  # tasks are cancelled, redelivered or lost
    stopped.process.wait(timeout=30)
    run.assert_exact(operation_id)


def test_a_pool_process_killed_mid_run(run_setup):
    # No re-send by housekeeping: the rejected chunk goes back to the queue.
    run = run_setup(52, BATCH_MAX_RESUMES=0)
    (worker, _), operation_id = run.started_mid_run()
    victim = worker.pool_processes()[0]
    subprocess.run(["kill", "-KILL", str(victim)], check=True)
    operation = run.assert_exact(operation_id)
    assert "WorkerLostError" in worker.output()
    assert operation.resumed == 0


def test_redis_restarted_mid_run_and_unsent_ticks_are_recorded(run_setup, redis_server):
    run = run_setup(53)
    _, operation_id = run.started_mid_run()
    redis_server.process.terminate()
    redis_server.process.wait(timeout=10)

    def unsent_tick():
        with run.app.app_context():
            return db.session.scalars(
                select(BatchOperation).where(
                    BatchOperation.operation_type == "housekeeping",
                    BatchOperation.result == "failed",
                )
            ).first()

    tick = wait_until(unsent_tick, timeout=60)
    restart_redis(redis_server)
    run.assert_exact(operation_id)
    assert tick.status == "finished"
    assert "broker lost" in tick.error
    assert f"127.0.0.1:{redis_server.port}" in tick.error
    assert "housekeeping" in tick.error


def test_postgresql_stopped_and_started_mid_run(run_setup, cluster):
    run = run_setup(54)
    _, operation_id = run.started_mid_run()
    cluster.pg_ctl("stop", "-m", "fast")
    try:
        # Long enough for every chunk in flight to meet the closed database
        # and for the run's heartbeat to go stale.
        time.sleep(6)
    finally:
        cluster.pg_ctl("start", "-o", cluster.options)
    run.assert_exact(operation_id)
    logs = run.logs()
    assert "retry: Retry in" in logs
    assert "OperationalError" in logs


# --- what a run says about itself, carried out in this process ---


@pytest.fixture
def crawl_app(make_app):
    return lambda **overrides: make_app(**{**RUN_SETTINGS, **overrides})


def add_instances(app, urls, **fields) -> list[int]:
    with app.app_context():
        instances = [
            Instance(
                url=url,
                contact="C",
                email="c@example.org",
                organisation="O",
                approved=True,
                **fields,
            )
            for url in urls
        ]
        db.session.add_all(instances)
        db.session.commit()
        return [instance.id for instance in instances]


def crawl_here(app) -> BatchOperation:
    from tracker.instances.crawling import SCOPE_ALL
    from tracker.instances.launch import launch_crawl
    from tracker.instances.tasks import crawl_now

    with app.app_context():
        operation_id = launch_crawl(SCOPE_ALL, run=crawl_now).id
        db.session.expire_all()
        operation = db.session.get(BatchOperation, operation_id)
        db.session.expunge(operation)
        return operation


@pytest.fixture
def small_fleet():
    behaviours = {
        "127.0.55.1": Behaviour(JSON, data={"version": "3.3"}),
        "127.0.55.2": Behaviour(STATUS, status=500),
        "127.0.55.3": Behaviour(JSON, data={"version": "3.4"}),
    }
    with Fleet(behaviours) as fleet:
        yield fleet


def test_a_run_with_a_down_host_is_successful_and_lists_it(
    crawl_app, small_fleet, token
):
    app = crawl_app()
    up, down, _ = add_instances(
        app, [small_fleet.url(f"127.0.55.{n}") for n in (1, 2, 3)]
    )
    add_instances(app, ["http://127.0.55.9:1"], enabled=False)  # not in the run
    operation = crawl_here(app)
    assert operation.total == 3
    assert (operation.result, operation.done, operation.failed) == ("successful", 2, 1)
    assert operation.notice == ""

    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    listed = client.get(
        f"/api/batch-operations/{operation.id}/items", headers=headers
    ).get_json()
    assert listed["total"] == 1
    [item] = listed["items"]
    assert (item["id"], item["outcome"]) == (down, "failed")
    assert "HTTP 500" in item["error"]
    assert item["instance"]["url"] == small_fleet.url("127.0.55.2")
    every = client.get(
        f"/api/batch-operations/{operation.id}/items?outcome=all&per_page=2",
        headers=headers,
    ).get_json()
    assert (every["total"], every["pages"], len(every["items"])) == (3, 2, 2)
    done = client.get(
        f"/api/batch-operations/{operation.id}/items?outcome=done", headers=headers
    ).get_json()
    assert up in {i["id"] for i in done["items"]}
    bad = client.get(
        f"/api/batch-operations/{operation.id}/items?outcome=lost", headers=headers
    )
    assert bad.status_code == 400
    assert bad.get_json()["field"] == "outcome"
    assert client.get(f"/api/batch-operations/{operation.id}/items").status_code == 401
    missing = client.get("/api/batch-operations/999999/items", headers=headers)
    assert missing.status_code == 404


def signed_in_client(app):
    """A client signed in as ``ada`` through the login form."""
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    client.post(
        "/login",
        data={
            "username": "ada",
            "password": "correct horse",
            "csrf_token": csrf.group(1),
        },
    )
    return client


def test_the_detail_page_lists_down_and_skipped_instances(crawl_app, small_fleet, user):
    app = crawl_app(CRAWL_DENY_NETWORKS=["127.0.55.3/32"])
    add_instances(app, [small_fleet.url(f"127.0.55.{n}") for n in (1, 2, 3)])
    operation = crawl_here(app)
    assert (operation.done, operation.failed, operation.skipped) == (1, 1, 1)
    assert operation.result == "successful"
    client = signed_in_client(app)
    page = client.get(f"/batch-operations/{operation.id}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert small_fleet.url("127.0.55.2") in text
    assert "HTTP 500" in text
    assert small_fleet.url("127.0.55.3") in text
    assert "denied network" in text
    assert small_fleet.url("127.0.55.1") not in text  # up: not listed by default
    listed_all = client.get(f"/batch-operations/{operation.id}?outcome=all")
    assert small_fleet.url("127.0.55.1") in listed_all.get_data(as_text=True)
    assert client.get(f"/batch-operations/{operation.id}?outcome=x").status_code == 400
    index = client.get("/batch-operations").get_data(as_text=True)
    assert f'href="/batch-operations/{operation.id}"' in index


def test_a_run_refused_by_the_network_policy_says_so(crawl_app, small_fleet):
    app = crawl_app(CRAWL_DENY_NETWORKS=["127.0.0.0/8"])
    add_instances(app, [small_fleet.url(f"127.0.55.{n}") for n in (1, 2, 3)])
    operation = crawl_here(app)
    assert (operation.done, operation.failed, operation.skipped) == (0, 0, 3)
    assert "the network policy refused every address" in operation.notice
    assert "CRAWL_DENY_NETWORKS" in operation.notice
    with app.app_context():
        from tracker.batch.models import BatchItem

        errors = db.session.scalars(
            select(BatchItem.error).where(BatchItem.batch_operation_id == operation.id)
        ).all()
    assert all("denied network" in error for error in errors)


def test_a_run_without_endpoints_says_it_fetched_nothing(crawl_app, small_fleet):
    app = crawl_app(CRAWLING_ENDPOINTS=[])
    add_instances(app, [small_fleet.url("127.0.55.1")])
    operation = crawl_here(app)
    assert (operation.result, operation.done) == ("successful", 1)
    assert "no endpoints configured" in operation.notice


def test_a_chunk_delivered_twice_counts_once(crawl_app, small_fleet):
    from tracker.instances.crawler import CrawlSettings
    from tracker.instances.crawling import SCOPE_ALL, crawl_chunk
    from tracker.instances.geo import Locator
    from tracker.instances.launch import launch_crawl
    from tracker.instances.tasks import begin_run, finish_run

    app = crawl_app()
    add_instances(app, [small_fleet.url(f"127.0.55.{n}") for n in (1, 2, 3)])
    with app.app_context():
        operation_id = launch_crawl(SCOPE_ALL, run=lambda _: None).id
        ids = begin_run(operation_id)
        settings = CrawlSettings.from_config(app.config)
        small_fleet.record = True
        small_fleet.seen.clear()
        for _ in range(2):
            crawl_chunk(
                db.session,
                operation_id,
                ids,
                settings,
                Locator(),
                False,
                db.session.commit,
            )
        assert finish_run(db.session, operation_id, app.config)
        db.session.commit()
        operation = db.session.get(BatchOperation, operation_id)
        assert (operation.total, operation.processed) == (3, 3)
        history = db.session.scalars(
            select(CrawlResult.instance_id).where(
                CrawlResult.batch_operation_id == operation_id
            )
        ).all()
        assert sorted(history) == sorted(ids)
    assert len(small_fleet.seen) == 3  # the second delivery crawled nothing


def test_housekeeping_names_a_lost_broker_and_closes_a_run_that_cannot_finish(
    crawl_app, small_fleet
):
    from tracker.housekeeping import RESUMERS_KEY, recover_stale
    from tracker.instances.crawling import SCOPE_ALL
    from tracker.instances.launch import launch_crawl
    from tracker.instances.tasks import begin_run

    broker = f"redis://127.0.0.1:{free_port()}/0"
    app = crawl_app(CELERY_BROKER_URL=broker, BATCH_MAX_RESUMES=1)
    add_instances(app, [small_fleet.url("127.0.55.1")])
    with app.app_context():
        operation_id = launch_crawl(SCOPE_ALL, run=lambda _: None).id
        begin_run(operation_id)  # running; its chunk never sent

        def stale_and_recover():
            db.session.get(BatchOperation, operation_id).heartbeat = utcnow() - (
                timedelta(seconds=60)
            )
            db.session.commit()
            return recover_stale(db.session, app.config, app.extensions[RESUMERS_KEY])

        assert stale_and_recover() == {"resumed": [operation_id], "closed": []}
        operation = db.session.get(BatchOperation, operation_id, populate_existing=True)
        assert operation.fault.startswith(f"broker lost: {broker}")
        assert operation.is_active
        assert stale_and_recover() == {"resumed": [], "closed": [operation_id]}
        operation = db.session.get(BatchOperation, operation_id, populate_existing=True)
        assert (operation.status, operation.result) == ("finished", "failed")
        assert operation.error.startswith("broker lost")
        assert "cannot finish" in operation.error
        assert "1 of 1 not attempted" in operation.error


def test_beat_records_a_tick_the_broker_could_not_take(crawl_app, tmp_path: Path):
    from tracker.background import RecordingScheduler

    broker = f"redis://127.0.0.1:{free_port()}/0"
    app = crawl_app(CELERY_BROKER_URL=broker)
    celery = app.extensions["celery"]
    scheduler = RecordingScheduler(
        app=celery, schedule_filename=str(tmp_path / "schedule"), lazy=True
    )
    scheduler.setup_schedule()
    scheduler.apply_entry(scheduler.schedule["crawl-instances"])
    with app.app_context():
        recorded = db.session.scalars(select(BatchOperation)).one()
    assert (recorded.operation_type, recorded.scope) == ("crawl", "all")
    assert (recorded.status, recorded.result) == ("finished", "failed")
    assert f"broker lost: {broker}" in recorded.error
    assert "'crawl-instances' tick was not sent" in recorded.error


def test_a_redis_broker_hands_a_dead_worker_s_chunk_on_after_one_chunk(crawl_app):
    from tracker.instances.tasks import chunk_seconds, visibility_timeout

    app = crawl_app(CELERY_BROKER_URL="redis://127.0.0.1:6379/0")
    options = app.extensions["celery"].conf.broker_transport_options
    # 25 instances, 10 at a time: three waves of at most 3 s each.
    assert chunk_seconds(app.config) == 9
    assert options["visibility_timeout"] == visibility_timeout(app.config) == 27
    assert options["unacked_restore_throttle"] == 1
    chosen = crawl_app(
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        CELERY_BROKER_TRANSPORT_OPTIONS={"visibility_timeout": 600},
    )
    kept = chosen.extensions["celery"].conf.broker_transport_options
    assert kept["visibility_timeout"] == 600

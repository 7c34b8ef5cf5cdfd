"""Fault mode: crawl runs on Celery as in production, one of them losing a worker.

PostgreSQL and Redis of their own, two workers and one beat (for housekeeping),
all started as an operator would. The same fleet is crawled twice: once without
a fault, then with one worker killed (SIGKILL to its process group) once a third
of the run is processed. Each run's wall time is its operation's created ->
finished; its counts are checked against the fleet and its history rows.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.crawl import modes
from bench.crawl.plan import Plan

POOL_PROCESSES = 2  # Celery pool processes per worker
KILL_AT = 1 / 3  # the share of the run processed when a worker is killed
POLL_SECONDS = 0.2
HOUSEKEEPING_SECONDS = 2


class ServiceError(Exception):
    """PostgreSQL, Redis or a Celery process could not be started."""


@dataclass
class Cluster:
    """The services and Celery processes of the fault mode."""

    workdir: Path
    postgres: Any = None
    redis: Any = None
    workers: list[Any] = field(default_factory=list)
    beat: Any = None

    def stop(self) -> None:
        """Stop whatever was started, Celery first."""
        for process in [*self.workers, self.beat]:
            if process is not None:
                process.stop()
        for service in (self.redis, self.postgres):
            if service is not None:
                service.stop()


def heartbeat_timeout(options: modes.Options) -> int:
    """Seconds without progress after which housekeeping re-sends a run's
    work: the shortest the settings allow, with a margin."""
    return int(2 * options.timeout) + 4


def fault_settings(
    workdir: Path, options: modes.Options, database_url: str, broker_url: str
) -> dict[str, Any]:
    """The app's and the workers' settings: PostgreSQL, Redis, housekeeping."""
    return {
        **modes.app_settings(workdir, options),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "CELERY_BROKER_URL": broker_url,
        "CRAWL_INTERVAL": 86400,  # no scheduled run besides the measured ones
        "HOUSEKEEPING_INTERVAL": HOUSEKEEPING_SECONDS,
        "BATCH_HEARTBEAT_TIMEOUT": heartbeat_timeout(options),
    }


def _start(what: str, start: Any) -> Any:
    """Start a service; a missing one is a ServiceError, not a test skip."""
    try:
        return start()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # the test helpers skip or fail via pytest
        raise ServiceError(f"cannot start {what}: {exc}") from None


@contextlib.contextmanager
def cluster(
    workdir: Path, plan: Plan, port: int, options: modes.Options, workers: int
) -> Iterator[tuple[Cluster, Any]]:
    """Start the services, the fleet's database and the Celery processes; yield
    them and the app that launches the runs; stop everything after."""
    from tests.celery_processes import celery_environment, start_beat, start_worker
    from tests.services import start_postgres, start_redis

    running = Cluster(workdir)
    try:
        running.postgres = _start("PostgreSQL", start_postgres)
        running.redis = _start("Redis", start_redis)
        running.postgres.admin("CREATE DATABASE bench_crawl")
        settings = fault_settings(
            workdir,
            options,
            running.postgres.url("bench_crawl"),
            running.redis.url,
        )
        app = modes.make_app(workdir, options, **settings)
        with app.app_context():
            modes.insert_fleet(plan, port)
        env = celery_environment(settings, workdir / "instance")
        for number in range(1, workers + 1):
            running.workers.append(
                _start(
                    "a Celery worker",
                    lambda n=number: start_worker(
                        env, workdir / f"worker-{n}.log", POOL_PROCESSES
                    ),
                )
            )
        running.beat = _start(
            "Celery beat",
            lambda: start_beat(env, workdir / "beat.log", workdir / "beat-schedule"),
        )
        yield running, app
    finally:
        running.stop()


def _operation(app: Any, operation_id: int) -> Any:
    from tracker.batch.models import BatchOperation
    from tracker.extensions import db

    with app.app_context():
        db.session.expire_all()
        operation = db.session.get(BatchOperation, operation_id)
        db.session.expunge(operation)
        return operation


def _stored(app: Any, operation_id: int) -> dict[str, Any]:
    """What the run left: history rows (all and distinct instances), items
    not attempted."""
    from sqlalchemy import distinct, func, select

    from tracker.batch import operations
    from tracker.extensions import db
    from tracker.instances.models import CrawlResult

    with app.app_context():
        rows, instances = db.session.execute(
            select(
                func.count(CrawlResult.id),
                func.count(distinct(CrawlResult.instance_id)),
            ).where(CrawlResult.batch_operation_id == operation_id)
        ).one()
        pending = len(operations.pending_items(db.session, operation_id))
    return {"history_rows": rows, "history_instances": instances, "pending": pending}


def crawl_run(app: Any, bound: float, victim: Any = None) -> dict[str, Any]:
    """Launch a run of every instance and wait for it to finish; kill
    ``victim``'s process group once KILL_AT of it is processed."""
    from tracker.instances.crawling import SCOPE_ALL
    from tracker.instances.launch import launch_crawl

    with app.app_context():
        operation_id = launch_crawl(SCOPE_ALL).id
    deadline = time.monotonic() + bound
    killed_at = None
    while True:
        operation = _operation(app, operation_id)
        if not operation.is_active:
            break
        if time.monotonic() > deadline:
            raise ServiceError(f"crawl run #{operation_id} did not finish in time")
        due = operation.total and operation.processed >= KILL_AT * operation.total
        if victim is not None and killed_at is None and due:
            victim.kill()
            killed_at = operation.processed
        time.sleep(POLL_SECONDS)
    wall = (operation.finished - operation.created).total_seconds()
    return {
        "operation_id": operation_id,
        "wall_s": wall,
        "result": operation.result,
        "total": operation.total,
        "up": operation.done,
        "down": operation.failed,
        "skipped": operation.skipped,
        "killed_at": killed_at,
        "fault": operation.fault,
        "error": operation.error,
        **_stored(app, operation_id),
    }


def run_fault_mode(
    workdir: Path,
    plan: Plan,
    port: int,
    options: modes.Options,
    workers: int,
    bound: float,
) -> dict[str, Any]:
    """Crawl the fleet without a fault, then with a worker killed mid-run."""
    from tracker.instances.tasks import visibility_timeout

    with cluster(workdir, plan, port, options, workers) as (running, app):
        clean = crawl_run(app, bound)
        faulty = crawl_run(app, bound, victim=running.workers[0])
        visibility = visibility_timeout(app.config)
        chunk_size = app.config["CRAWL_CHUNK_SIZE"]
    return {
        "runs": [
            {**clean, "label": f"no fault, {workers} workers"},
            {**faulty, "label": f"1 of {workers} workers killed (SIGKILL)"},
        ],
        "settings": {
            "workers": workers,
            "pool_processes": POOL_PROCESSES,
            "chunk_size": chunk_size,
            "heartbeat_timeout_s": heartbeat_timeout(options),
            "housekeeping_interval_s": HOUSEKEEPING_SECONDS,
            "visibility_timeout_s": visibility,
            "kill_at": KILL_AT,
        },
    }


def check_fault_counts(run: dict[str, Any], plan: Plan, warnings: list[str]) -> None:
    """Warn unless the run attempted every instance once, with exact counts."""
    up, down = plan.instances - plan.hanging, plan.hanging
    expected = {
        "result": "successful",
        "total": plan.instances,
        "up": up,
        "down": down,
        "skipped": 0,
        "history_rows": plan.instances,
        "history_instances": plan.instances,
        "pending": 0,
    }
    wrong = {k: run[k] for k, v in expected.items() if run[k] != v}
    if wrong:
        warnings.append(
            f"{run['label']}: {wrong} differ from the expected "
            f"{ {k: expected[k] for k in wrong} }"
        )

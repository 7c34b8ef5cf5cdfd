"""What is measured, each run in a child process: engine, pipeline, naive."""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.crawl.plan import ENDPOINTS, Plan

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
ALLOW_EVERYTHING = ["0.0.0.0/0", "::/0"]
USER_AGENT = "InstanceTracker/1 (crawler)"
MAX_BYTES = 1024 * 1024
BARRIER_TIMEOUT = 300.0
CHARTED_FIELDS = {
    "users": {"chart": True, "chart_type": "line"},
    "version": {"chart": True, "chart_type": "pie"},
}
ERROR_EXAMPLES = 3


@dataclass(frozen=True)
class Options:
    """Crawl settings shared by every mode."""

    timeout: float
    connect_timeout: float
    concurrency: int


def loopback_urls(plan: Plan, port: int) -> list[str]:
    """Base URLs of the fleet; refuses anything outside 127.0.0.0/8."""
    urls = [f"http://{address}:{port}" for address in plan.addresses()]
    for url in urls:
        if ipaddress.ip_address(urlsplit(url).hostname or "") not in LOOPBACK:
            raise ValueError(f"refusing to crawl a non-loopback URL: {url}")
    return urls


def engine_settings(options: Options) -> Any:
    """CrawlSettings for the fleet: its endpoints, every network allowed."""
    from tracker.instances.crawler import CrawlSettings, Endpoint
    from tracker.instances.network import NetworkPolicy

    return CrawlSettings(
        endpoints=tuple(Endpoint(path) for path in ENDPOINTS),
        timeout=options.timeout,
        connect_timeout=options.connect_timeout,
        max_bytes=MAX_BYTES,
        concurrency=options.concurrency,
        policy=NetworkPolicy.from_settings(ALLOW_EVERYTHING, []),
        user_agent=USER_AGENT,
    )


def run_engine(plan: Plan, port: int, options: Options) -> dict[str, Any]:
    """Iterate ``crawl()`` over the whole fleet; count outcomes."""
    from tracker.instances.crawler import Target, crawl

    targets = [
        Target(index + 1, url) for index, url in enumerate(loopback_urls(plan, port))
    ]
    settings = engine_settings(options)
    health: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    ticks = 0
    began, cpu = time.monotonic(), time.process_time()
    for outcome in crawl(targets, settings):
        if outcome is None:
            ticks += 1
            continue
        health[outcome.health] += 1
        if outcome.error:
            errors[outcome.error] += 1
    wall, cpu = time.monotonic() - began, time.process_time() - cpu
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "up": health["up"],
        "down": health["down"],
        "skipped": health["unknown"],
        "idle_ticks": ticks,
        "errors": dict(errors.most_common(ERROR_EXAMPLES)),
    }


def app_settings(workdir: Path, options: Options) -> dict[str, Any]:
    """Settings of the app that crawls the fleet, on SQLite in ``workdir``."""
    return {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{workdir / 'bench.sqlite'}",
        "SECRET_KEY": "bench-crawl-secret-key-of-32-bytes-or-more",
        "CRAWLING_ENDPOINTS": [{"url": path} for path in ENDPOINTS],
        "CRAWL_TIMEOUT": options.timeout,
        "CRAWL_CONNECT_TIMEOUT": options.connect_timeout,
        "CRAWL_CONCURRENCY": options.concurrency,
        "CRAWL_ALLOW_NETWORKS": ALLOW_EVERYTHING,
        "CRAWL_DENY_NETWORKS": [],
        # One field drawn over time, so recording also writes daily values.
        "CRAWLED_FIELDS_SETTINGS": CHARTED_FIELDS,
    }


def make_app(workdir: Path, options: Options, **overrides: Any) -> Any:
    """The app set to crawl the fleet (``app_settings``, then ``overrides``)."""
    from tracker import create_app

    workdir.mkdir(parents=True, exist_ok=True)
    settings_file = workdir / "settings.cfg"
    settings_file.touch()
    return create_app(
        {**app_settings(workdir, options), **overrides},
        instance_path=workdir / "instance",
        environ={"TRACKER_SETTINGS": str(settings_file)},
    )


def import_all_models() -> None:
    """Import every model module, wherever this version of the app keeps that."""
    try:
        from tracker.models import import_all_models as import_models
    except ImportError:
        from tracker.cli import _import_all_models as import_models
    import_models()


def worker_options(config: Any) -> dict[str, Any]:
    """Keyword arguments the worker task adds to ``crawl_chunk``, if any."""
    from tracker.instances import tasks

    daily_fields = getattr(tasks, "daily_fields_from_config", None)
    return {"daily_fields": daily_fields(config)} if daily_fields else {}


def insert_fleet(plan: Plan, port: int) -> list[int]:
    """Create the tables and insert the fleet's instances; return their ids."""
    from sqlalchemy import insert, select

    from tracker.extensions import db
    from tracker.instances.models import Instance

    import_all_models()
    db.create_all()
    rows = [
        {
            "url": url,
            "contact": "Bench",
            "email": "bench@example.org",
            "organisation": "Bench",
            "approved": True,
        }
        for url in loopback_urls(plan, port)
    ]
    db.session.execute(insert(Instance), rows)
    db.session.commit()
    return list(db.session.scalars(select(Instance.id).order_by(Instance.id)))


def prepare_database(
    workdir: Path, plan: Plan, port: int, options: Options
) -> tuple[list[int], int]:
    """Create the tables, insert the fleet, start a crawl operation; return ids, op."""
    from tracker.extensions import db

    app = make_app(workdir, options)
    with app.app_context():
        ids = insert_fleet(plan, port)
        db.engine.dispose()
    return ids, new_operation(workdir, options, ids)


def prepare(workdir: Path, plan: Plan, port: int, options: Options) -> dict:
    """``prepare_database`` as a child-process result."""
    ids, operation_id = prepare_database(workdir, plan, port, options)
    return {"ids": ids, "operation_id": operation_id}


def run_chunk(
    workdir: Path, options: Options, ids: list[int], operation_id: int, barrier: Any
) -> dict[str, Any]:
    """What a worker does with one chunk: ``crawl_chunk`` in an app context."""
    from tracker.extensions import db
    from tracker.instances.crawler import CrawlSettings
    from tracker.instances.crawling import crawl_chunk
    from tracker.instances.geo import Locator

    app = make_app(workdir, options)
    with app.app_context():
        settings = CrawlSettings.from_config(app.config)
        extra = worker_options(app.config)
        if barrier is not None:
            barrier.wait(BARRIER_TIMEOUT)
        began, cpu = time.monotonic(), time.process_time()
        counts = crawl_chunk(
            db.session,
            operation_id,
            ids,
            settings,
            Locator(),
            False,
            db.session.commit,
            **extra,
        )
        ended, cpu = time.monotonic(), time.process_time() - cpu
        db.engine.dispose()
    return {
        "began": began,
        "ended": ended,
        "wall_s": ended - began,
        "cpu_s": cpu,
        "up": counts.up,
        "down": counts.down,
        "skipped": counts.skipped,
    }


def run_pipeline(
    workdir: Path, plan: Plan, port: int, options: Options
) -> dict[str, Any]:
    """Prepare a database, then crawl every instance in one ``crawl_chunk``."""
    ids, operation_id = prepare_database(workdir, plan, port, options)
    result = run_chunk(workdir, options, ids, operation_id, None)
    result["database"] = finish_and_check(workdir, options, operation_id)
    # A second crawl, as every later one: the slow hosts of the first now
    # start first, and every instance has values to compare with.
    operation_id = new_operation(workdir, options, ids)
    second = run_chunk(workdir, options, ids, operation_id, None)
    second["database"] = finish_and_check(workdir, options, operation_id)
    result["second"] = second
    return result


def new_operation(workdir: Path, options: Options, ids: list[int]) -> int:
    """Start another crawl operation over ``ids``; return its id."""
    from tracker.batch import operations
    from tracker.extensions import db
    from tracker.instances.crawling import CRAWL_OPERATION, SCOPE_ALL

    app = make_app(workdir, options)
    with app.app_context():
        operation = operations.create_asynchronous(
            db.session, CRAWL_OPERATION, SCOPE_ALL
        )
        db.session.commit()
        operations.mark_running(db.session, operation.id, total=len(ids))
        # Each instance is an item of the run, counted once (where the app
        # has items).
        add_items = getattr(operations, "add_items", None)
        if add_items is not None:
            add_items(db.session, operation.id, ids)
        db.session.commit()
        operation_id = operation.id
        db.engine.dispose()
    return operation_id


def finish_and_check(workdir: Path, options: Options, operation_id: int) -> dict:
    """Finish the operation as the last worker would; read back what was stored."""
    from sqlalchemy import func, select

    from tracker.batch import operations
    from tracker.batch.models import BatchOperation
    from tracker.extensions import db
    from tracker.instances.models import CrawlResult, Instance

    app = make_app(workdir, options)
    with app.app_context():
        operations.finish_if_complete(db.session, operation_id)
        db.session.commit()
        health = dict(
            db.session.execute(
                select(Instance.health, func.count()).group_by(Instance.health)
            ).all()
        )
        history = db.session.scalar(select(func.count(CrawlResult.id)))
        daily = count_daily_values()
        operation = db.session.get(BatchOperation, operation_id)
        summary = {
            "health": health,
            "history_rows": history,
            "daily_value_rows": daily,
            "operation": {
                "status": operation.status,
                "result": operation.result,
                "total": operation.total,
                "done": operation.done,
                "failed": operation.failed,
                "skipped": operation.skipped,
            },
        }
        db.engine.dispose()
    return summary


def count_daily_values() -> int | None:
    """Rows of daily values, or None in a version of the app without them."""
    from sqlalchemy import func, select

    from tracker.extensions import db
    from tracker.instances import models

    daily_value = getattr(models, "DailyValue", None)
    if daily_value is None:
        return None
    return db.session.scalar(select(func.count()).select_from(daily_value))


def run_naive(urls: list[str], timeout: float) -> dict[str, Any]:
    """The original way: one ``requests.get`` after another, JSON-decoded."""
    import requests

    up = down = 0
    began = time.monotonic()
    for base in urls:
        answered = 0
        for path in ENDPOINTS:
            try:
                # requests.get without proxies from the environment: loopback only.
                with requests.Session() as session:
                    session.trust_env = False
                    response = session.get(base + path, timeout=timeout)
                    response.raise_for_status()
                    response.json()
                answered += 1
            except (requests.RequestException, ValueError):
                pass
        if answered:
            up += 1
        else:
            down += 1
    return {"wall_s": time.monotonic() - began, "up": up, "down": down}

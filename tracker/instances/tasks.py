"""Celery tasks that carry out a crawl run: fan out in chunks, crawl each chunk.

A run starts through :func:`tracker.instances.launch.launch_crawl`; these tasks
(and :func:`crawl_now` for the command line) do the work and own the transactions.
"""

from __future__ import annotations

from collections.abc import Callable

from celery import shared_task
from flask import current_app

from tracker.batch import operations
from tracker.batch.models import BatchOperation
from tracker.extensions import db
from tracker.instances.charts import daily_fields, field_settings
from tracker.instances.crawler import CrawlSettings
from tracker.instances.crawling import chunks, crawl_chunk, crawlable_ids
from tracker.instances.geo import Locator
from tracker.instances.recording import Counts

_locators: dict[str | None, Locator] = {}


def daily_fields_from_config(config) -> dict[str, str | None]:
    """The crawled fields whose daily values the statistics draw as lines."""
    return daily_fields(field_settings(config["CRAWLED_FIELDS_SETTINGS"]))


def locator() -> Locator:
    """One GeoIP reader per worker process and database."""
    path = current_app.config["GEOIP_DATABASE"]
    if path not in _locators:
        _locators[path] = Locator(path)
    return _locators[path]


@shared_task(name="tracker.instances.tasks.start_crawl", ignore_result=True)
def start_crawl(operation_id: int) -> None:
    """Start a crawl run whose operation is committed: fan it out in chunks."""
    ids = begin_run(operation_id)
    if ids is None:
        return
    for chunk in chunks(ids, current_app.config["CRAWL_CHUNK_SIZE"]):
        crawl_instances_chunk.delay(operation_id, chunk)


@shared_task(
    name="tracker.instances.tasks.crawl_instances_chunk",
    ignore_result=True,
    acks_late=True,
)
def crawl_instances_chunk(operation_id: int, instance_ids: list[int]) -> None:
    """Crawl one chunk of a run; the last chunk to finish finishes the run."""
    operation = db.session.get(BatchOperation, operation_id)
    if operation is None or not operation.is_active:
        return  # a late redelivery for a run that housekeeping already closed
    _crawl(operation_id, instance_ids)


def crawl_now(
    operation_id: int, on_progress: Callable[[Counts], None] | None = None
) -> None:
    """Carry out a whole run in this process (the command line does)."""
    ids = begin_run(operation_id)
    if ids:
        _crawl(operation_id, ids, on_progress)


def begin_run(operation_id: int) -> list[int] | None:
    """Mark the run running with its total and return the ids to crawl; None if
    it already began (a task delivered twice). A run with nothing to crawl
    finishes here."""
    operation = db.session.get(BatchOperation, operation_id)
    if operation is None:
        return None
    ids = crawlable_ids(
        db.session,
        current_app.config["CRAWL_REQUIRE_APPROVAL"],
        operation.input_data.get("instance_ids"),
    )
    if not operations.mark_running(db.session, operation_id, total=len(ids)):
        db.session.rollback()
        return None  # delivered twice: the first delivery runs it
    db.session.commit()
    if not ids:
        operations.finish_if_complete(db.session, operation_id)
        db.session.commit()
    return ids


def _crawl(
    operation_id: int,
    instance_ids: list[int],
    on_progress: Callable[[Counts], None] | None = None,
) -> None:
    config = current_app.config
    crawl_chunk(
        db.session,
        operation_id,
        instance_ids,
        CrawlSettings.from_config(config),
        locator(),
        config["CRAWL_REQUIRE_APPROVAL"],
        commit=db.session.commit,
        on_progress=on_progress,
        daily_fields=daily_fields_from_config(config),
    )
    operations.finish_if_complete(db.session, operation_id)
    db.session.commit()

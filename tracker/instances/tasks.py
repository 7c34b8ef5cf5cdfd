"""Celery tasks of the crawler: thin wrappers that own the transactions."""

from __future__ import annotations

from celery import shared_task
from flask import current_app

from tracker.batch import operations
from tracker.batch.models import BatchOperation
from tracker.extensions import db
from tracker.instances.charts import daily_fields, field_settings
from tracker.instances.crawler import CrawlSettings
from tracker.instances.crawling import (
    CRAWL_OPERATION,
    SCOPE_ALL,
    chunks,
    crawl_chunk,
    crawlable_ids,
)
from tracker.instances.geo import Locator

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


@shared_task(name="tracker.instances.tasks.scheduled_crawl", ignore_result=True)
def scheduled_crawl() -> None:
    """Start a crawl of every instance, or record a skip while one is running."""
    try:
        operation = operations.create_asynchronous(
            db.session, CRAWL_OPERATION, SCOPE_ALL
        )
    except operations.AlreadyActive as exc:
        db.session.rollback()
        existing = exc.existing.id if exc.existing else "?"
        operations.record_skipped(
            db.session,
            CRAWL_OPERATION,
            SCOPE_ALL,
            f"skipped: crawl run #{existing} is still active",
        )
        db.session.commit()
        return
    db.session.commit()
    fan_out(operation.id)


@shared_task(name="tracker.instances.tasks.start_crawl", ignore_result=True)
def start_crawl(operation_id: int) -> None:
    """Start a crawl run whose operation a view or command already committed."""
    fan_out(operation_id)


def fan_out(operation_id: int) -> None:
    """Split the run into chunks, one task each, so more workers crawl faster."""
    config = current_app.config
    operation = db.session.get(BatchOperation, operation_id)
    if operation is None:
        return
    ids = crawlable_ids(
        db.session,
        config["CRAWL_REQUIRE_APPROVAL"],
        operation.input_data.get("instance_ids"),
    )
    if not operations.mark_running(db.session, operation_id, total=len(ids)):
        db.session.rollback()
        return  # delivered twice: the first delivery runs it
    db.session.commit()
    if not ids:
        operations.finish_if_complete(db.session, operation_id)
        db.session.commit()
        return
    for chunk in chunks(ids, config["CRAWL_CHUNK_SIZE"]):
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
    config = current_app.config
    crawl_chunk(
        db.session,
        operation_id,
        instance_ids,
        CrawlSettings.from_config(config),
        locator(),
        config["CRAWL_REQUIRE_APPROVAL"],
        commit=db.session.commit,
        daily_fields=daily_fields_from_config(config),
    )
    operations.finish_if_complete(db.session, operation_id)
    db.session.commit()

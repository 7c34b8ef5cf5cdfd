"""Celery tasks that carry out a crawl run: fan out in chunks, crawl each chunk.

A run starts through :func:`tracker.instances.launch.launch_crawl`; these tasks
(and :func:`crawl_now` for the command line) do the work and own the transactions.

A run survives its faults: a chunk is acknowledged only once done, so the chunk
of a worker that died goes to another (at once when one pool process dies,
after the broker's visibility timeout when the whole worker does); a chunk
retries with backoff while the database is unreachable; and housekeeping
re-sends the chunks of a stale run's instances not yet attempted
(:func:`resume_run`). Items make each instance count once per run.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from typing import Any

from celery import Task, shared_task
from flask import current_app
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from tracker.batch import operations
from tracker.batch.models import (
    NOTICE_KEY,
    RESULT_SUCCESSFUL,
    STATUS_UNPROCESSED,
    BatchOperation,
)
from tracker.extensions import db
from tracker.instances.charts import daily_fields, field_settings
from tracker.instances.crawler import CrawlSettings
from tracker.instances.crawling import (
    chunks,
    crawl_chunk,
    crawlable_ids,
    run_notice,
)
from tracker.instances.geo import Locator
from tracker.instances.recording import Counts, HistoryLimit
from tracker.instances.tallies import configured_charts
from tracker.notifications.tasks import evaluate_soon

START_TASK = "tracker.instances.tasks.start_crawl"
CHUNK_TASK = "tracker.instances.tasks.crawl_instances_chunk"
CRAWL_QUEUE = "crawl"
# Longest wait between two tries while the database is unreachable; a retried
# task waits unacknowledged, so this stays well inside the visibility timeout.
RETRY_DELAY_MAX = 30
FAULT_TEXT_MAX = 300

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


def chunk_seconds(config: Mapping[str, Any]) -> float:
    """The longest a chunk may take to crawl: its instances in waves of
    CRAWL_CONCURRENCY, each wave bounded by the timeout (plus the crawler's
    hard stop a second later)."""
    waves = math.ceil(config["CRAWL_CHUNK_SIZE"] / config["CRAWL_CONCURRENCY"])
    return waves * (config["CRAWL_TIMEOUT"] + 1.0)


def retry_delay_max(config: Mapping[str, Any]) -> float:
    """The longest wait between two tries of a task while the database is
    unreachable: RETRY_DELAY_MAX, or one chunk's time if shorter."""
    return min(RETRY_DELAY_MAX, chunk_seconds(config))


def visibility_timeout(config: Mapping[str, Any]) -> float:
    """How long the broker waits for a chunk's acknowledgement before it gives
    the chunk to another worker: twice the longest chunk, plus the longest
    wait of a retry (a retried task waits unacknowledged)."""
    return 2 * chunk_seconds(config) + retry_delay_max(config)


def database_fault(exc: DBAPIError) -> str:
    """Name a database failure in one short line."""
    cause = exc.orig if exc.orig is not None else exc
    first_line = (str(cause).strip().splitlines() or [""])[0]
    return f"database unreachable: {type(cause).__name__}: {first_line}"[
        :FAULT_TEXT_MAX
    ]


def retry_while_database_down(task: Task, exc: DBAPIError, **kwargs: Any):
    """Retry ``task`` after 1, 2, 4 ... seconds (at most ``retry_delay_max``),
    at most CRAWL_DATABASE_RETRIES times; then let it fail (housekeeping
    re-sends what it left)."""
    with contextlib.suppress(DBAPIError):
        db.session.rollback()
    config = current_app.config
    return task.retry(
        exc=exc,
        countdown=min(2**task.request.retries, retry_delay_max(config)),
        max_retries=config["CRAWL_DATABASE_RETRIES"],
        kwargs={**task.request.kwargs, **kwargs, "fault": database_fault(exc)},
    )


def is_disconnect(exc: DBAPIError) -> bool:
    """Whether ``exc`` says the database could not be reached or went away."""
    return exc.connection_invalidated or isinstance(
        exc, OperationalError | InterfaceError
    )


def note_recovery(operation_id: int, fault: str, retries: int) -> None:
    """Keep the fault a task survived as the run's last fault."""
    if fault:
        operations.note_fault(
            db.session, operation_id, f"{fault} (survived: retried {retries} times)"
        )
        db.session.commit()


@shared_task(
    name=START_TASK,
    bind=True,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
)
def start_crawl(self: Task, operation_id: int, fault: str = "") -> None:
    """Start a crawl run whose operation is committed: fan it out in chunks."""
    try:
        note_recovery(operation_id, fault, self.request.retries)
        ids = begin_run(operation_id)
    except DBAPIError as exc:
        if not is_disconnect(exc):
            raise
        raise retry_while_database_down(self, exc) from exc
    if ids:
        send_chunks(operation_id, ids)


@shared_task(
    name=CHUNK_TASK,
    bind=True,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
)
def crawl_instances_chunk(
    self: Task, operation_id: int, instance_ids: list[int], fault: str = ""
) -> None:
    """Crawl one chunk of a run; the last chunk to finish finishes the run."""
    try:
        operation = db.session.get(BatchOperation, operation_id)
        if operation is None or not operation.is_active:
            return  # a late redelivery for a run that was closed
        note_recovery(operation_id, fault, self.request.retries)
        _crawl(operation_id, instance_ids)
    except DBAPIError as exc:
        if not is_disconnect(exc):
            raise
        raise retry_while_database_down(self, exc) from exc


def send_chunks(operation_id: int, ids: list[int]) -> int:
    """Queue ``ids`` in chunks of CRAWL_CHUNK_SIZE; return how many chunks."""
    parts = chunks(ids, current_app.config["CRAWL_CHUNK_SIZE"])
    for chunk in parts:
        crawl_instances_chunk.delay(operation_id, chunk)
    return len(parts)


def crawl_now(
    operation_id: int, on_progress: Callable[[Counts], None] | None = None
) -> None:
    """Carry out a whole run in this process (the command line does)."""
    ids = begin_run(operation_id)
    if ids:
        _crawl(operation_id, ids, on_progress)


def begin_run(operation_id: int) -> list[int] | None:
    """Mark the run running with its instances and return their ids; None if
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
    operations.add_items(db.session, operation_id, ids)
    db.session.commit()
    if not ids:
        finish_run(db.session, operation_id, current_app.config)
        db.session.commit()
    return ids


def finish_run(session: Session, operation_id: int, config: Mapping[str, Any]) -> bool:
    """Finish the run once every instance was attempted: successful, down hosts
    and all, with a notice when it fetched nothing. Exactly one caller wins."""
    if not operations.finish_if_complete(session, operation_id, RESULT_SUCCESSFUL):
        return False
    operation = session.get(BatchOperation, operation_id)
    notice = run_notice(session, operation, bool(config["CRAWLING_ENDPOINTS"]))
    if notice:
        operation.output_data = {**operation.output_data, NOTICE_KEY: notice}
    return True


def resume_run(
    session: Session, operation: BatchOperation, config: Mapping[str, Any]
) -> str:
    """Re-send what a stale run has not done (housekeeping calls this): its
    start if it never began, else the chunks of its instances not attempted."""
    if operation.status == STATUS_UNPROCESSED:
        start_crawl.delay(operation.id)
        return "re-sent the start of the run"
    ids = operations.pending_items(session, operation.id)
    if not ids:
        finish_run(session, operation.id, config)
        return "every instance was attempted: finished the run"
    sent = send_chunks(operation.id, ids)
    return f"re-sent {len(ids)} instances not attempted, in {sent} chunks"


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
        history_limit=HistoryLimit.from_config(config),
        charts=configured_charts(config),
    )
    finished = finish_run(db.session, operation_id, config)
    db.session.commit()
    if finished:
        # The run's changes of state go out as one digest, from another task.
        evaluate_soon()

"""Where every crawl run starts: beat, the dashboard, the API and the command line.

:func:`launch_crawl` commits the run's batch operation before anything is sent,
refuses a second run of the same scope, and hands the run to the workers (or,
for the command line, carries it out in this process).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from celery import Task, shared_task
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tracker.background import broker_fault
from tracker.batch import operations
from tracker.batch.models import RESULT_FAILED, BatchOperation
from tracker.batch.retries import QueueRefused
from tracker.extensions import db
from tracker.instances.crawling import CRAWL_OPERATION, SCOPE_ALL
from tracker.instances.tasks import (
    is_disconnect,
    retry_while_database_down,
    start_crawl,
)

SCHEDULED_CRAWL_TASK = "tracker.instances.tasks.scheduled_crawl"


class QueueUnavailable(Exception):
    """The broker could not take the task; the operation was closed as failed."""


def launch_crawl(
    scope: str,
    instance_ids: Sequence[int] | None = None,
    started_by_id: int | None = None,
    run: Callable[[int], object] | None = None,
) -> BatchOperation:
    """Create and commit a crawl run of ``instance_ids`` (None: every crawlable
    instance), then queue it, or hand its id to ``run`` to carry it out here.

    Raises ``operations.AlreadyActive`` while a crawl of the same scope is
    active, and QueueUnavailable when the broker cannot take the run.
    """
    input_data = {} if instance_ids is None else {"instance_ids": list(instance_ids)}
    try:
        operation = operations.create_asynchronous(
            db.session,
            CRAWL_OPERATION,
            scope,
            input_data=input_data,
            started_by_id=started_by_id,
        )
    except operations.AlreadyActive:
        db.session.rollback()
        raise
    db.session.commit()
    if run is not None:
        run(operation.id)
        return operation
    try:
        start_crawl.delay(operation.id)
    except Exception as exc:  # the broker is down: do not leave the run active
        fault = broker_fault(exc)
        operations.finish(db.session, operation.id, result=RESULT_FAILED, error=fault)
        db.session.commit()
        raise QueueUnavailable(str(exc)) from exc
    return operation


def retry_crawl(
    session: Session,
    operation: BatchOperation,
    failed_ids: Sequence[int],
    started_by_id: int | None,
) -> BatchOperation:
    """Crawl again, as a new run, the instances that failed in ``operation``
    (all of its instances when their outcomes are no longer kept)."""
    if failed_ids:
        scope, ids = f"retry:{operation.id}", list(failed_ids)
    else:
        scope, ids = operation.scope, operation.input_data.get("instance_ids")
    try:
        return launch_crawl(scope, ids, started_by_id)
    except QueueUnavailable as exc:
        raise QueueRefused(str(exc)) from exc


@shared_task(name=SCHEDULED_CRAWL_TASK, bind=True, ignore_result=True)
def scheduled_crawl(self: Task, fault: str = "") -> None:
    """Start a crawl of every instance, or record a skip while one is running;
    retry while the database is unreachable."""
    try:
        launch_crawl(SCOPE_ALL)
    except DBAPIError as exc:
        if not is_disconnect(exc):
            raise
        raise retry_while_database_down(self, exc) from exc
    except operations.AlreadyActive as exc:
        existing = exc.existing.id if exc.existing else "?"
        operations.record_skipped(
            db.session,
            CRAWL_OPERATION,
            SCOPE_ALL,
            f"skipped: crawl run #{existing} is still active",
        )
        db.session.commit()

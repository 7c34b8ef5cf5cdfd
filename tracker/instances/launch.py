"""Start a background crawl: commit its operation, then send its task."""

from __future__ import annotations

from tracker.batch import operations
from tracker.batch.models import RESULT_FAILED, BatchOperation
from tracker.extensions import db
from tracker.instances.crawling import CRAWL_OPERATION
from tracker.instances.tasks import start_crawl


class QueueUnavailable(Exception):
    """The broker could not take the task; the operation was closed as failed."""


def launch_crawl(
    scope: str, input_data: dict, started_by_id: int | None
) -> BatchOperation:
    """Create and commit the crawl operation, then queue it (views call this).

    Raises ``operations.AlreadyActive`` while a crawl of the same scope is active.
    """
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
    try:
        start_crawl.delay(operation.id)
    except Exception as exc:  # the broker is down: do not leave the run active
        operations.finish(
            db.session, operation.id, result=RESULT_FAILED, error=str(exc)
        )
        db.session.commit()
        raise QueueUnavailable(str(exc)) from exc
    return operation

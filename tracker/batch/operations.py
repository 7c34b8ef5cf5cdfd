"""Create, advance and finish BatchOperations; plain functions over a session.

Callers commit. Progress and finishing are single conditional UPDATEs, so any
number of workers can report on one operation without lost updates.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tracker.batch.models import (
    RESULT_FAILED,
    RESULT_PARTIAL,
    RESULT_SKIPPED,
    RESULT_SUCCESSFUL,
    STATUS_FINISHED,
    STATUS_RUNNING,
    STATUS_UNPROCESSED,
    BatchOperation,
)
from tracker.db_types import utcnow


class AlreadyActive(Exception):
    """Another operation of the same type and scope is still active."""

    def __init__(self, existing: BatchOperation | None) -> None:
        super().__init__("an operation of this type and scope is already active")
        self.existing = existing


def active_key(operation_type: str, scope: str) -> str:
    return f"{operation_type}:{scope}"


def find_active(
    session: Session, operation_type: str, scope: str
) -> BatchOperation | None:
    return session.scalar(
        select(BatchOperation).where(
            BatchOperation.active_key == active_key(operation_type, scope)
        )
    )


def _create(
    session: Session,
    operation_type: str,
    scope: str,
    status: str,
    input_data: dict[str, Any] | None,
    started_by_id: int | None,
    context: tuple[str, str] | None,
) -> BatchOperation:
    now = utcnow()
    operation = BatchOperation(
        operation_type=operation_type,
        scope=scope,
        status=status,
        input_data=input_data or {},
        started_by_id=started_by_id,
        context_type=context[0] if context else None,
        context_id=context[1] if context else None,
        created=now,
        started=now if status == STATUS_RUNNING else None,
        heartbeat=now,
        active_key=active_key(operation_type, scope),
    )
    try:
        with session.begin_nested():
            session.add(operation)
    except IntegrityError:
        raise AlreadyActive(find_active(session, operation_type, scope)) from None
    return operation


def create_asynchronous(
    session: Session,
    operation_type: str,
    scope: str = "",
    input_data: dict[str, Any] | None = None,
    started_by_id: int | None = None,
    context: tuple[str, str] | None = None,
) -> BatchOperation:
    """Add an unprocessed operation for a worker; commit it before sending the task."""
    return _create(
        session,
        operation_type,
        scope,
        STATUS_UNPROCESSED,
        input_data,
        started_by_id,
        context,
    )


def create_synchronous(
    session: Session,
    operation_type: str,
    scope: str = "",
    input_data: dict[str, Any] | None = None,
    started_by_id: int | None = None,
    context: tuple[str, str] | None = None,
) -> BatchOperation:
    """Add an operation that the caller runs now."""
    return _create(
        session,
        operation_type,
        scope,
        STATUS_RUNNING,
        input_data,
        started_by_id,
        context,
    )


def record_skipped(
    session: Session, operation_type: str, scope: str, reason: str
) -> BatchOperation:
    """Record a run that did not start (say, because another is active)."""
    now = utcnow()
    operation = BatchOperation(
        operation_type=operation_type,
        scope=scope,
        status=STATUS_FINISHED,
        result=RESULT_SKIPPED,
        created=now,
        started=now,
        finished=now,
        error=reason,
    )
    session.add(operation)
    return operation


def mark_running(session: Session, operation_id: int, total: int) -> bool:
    """Start an unprocessed operation; False if it is already running or finished."""
    now = utcnow()
    result = session.execute(
        update(BatchOperation)
        .where(
            BatchOperation.id == operation_id,
            BatchOperation.status == STATUS_UNPROCESSED,
        )
        .values(status=STATUS_RUNNING, started=now, heartbeat=now, total=total)
    )
    return result.rowcount == 1


def set_total(session: Session, operation_id: int, total: int) -> None:
    session.execute(
        update(BatchOperation)
        .where(BatchOperation.id == operation_id)
        .values(total=total)
    )


def add_progress(
    session: Session,
    operation_id: int,
    done: int = 0,
    failed: int = 0,
    skipped: int = 0,
) -> bool:
    """Add to the counts and beat the heart; False once the operation stopped."""
    result = session.execute(
        update(BatchOperation)
        .where(
            BatchOperation.id == operation_id, BatchOperation.status == STATUS_RUNNING
        )
        .values(
            done=BatchOperation.done + done,
            failed=BatchOperation.failed + failed,
            skipped=BatchOperation.skipped + skipped,
            heartbeat=utcnow(),
        )
    )
    return result.rowcount == 1


def result_from_counts(done: int, failed: int) -> str:
    if failed == 0:
        return RESULT_SUCCESSFUL
    return RESULT_FAILED if done == 0 else RESULT_PARTIAL


def finish(
    session: Session,
    operation_id: int,
    result: str | None = None,
    output_data: dict[str, Any] | None = None,
    error: str = "",
    stale_before: datetime | None = None,
) -> bool:
    """Finish a running or unprocessed operation; the result follows from the counts
    unless given. False if it had already finished (or, with ``stale_before``,
    if its heart beat since)."""
    operation = session.get(BatchOperation, operation_id, populate_existing=True)
    if operation is None or operation.status == STATUS_FINISHED:
        return False
    values: dict[str, Any] = {
        "status": STATUS_FINISHED,
        "result": result or result_from_counts(operation.done, operation.failed),
        "finished": utcnow(),
        "active_key": None,
        "error": error,
    }
    if output_data is not None:
        values["output_data"] = output_data
    conditions = [
        BatchOperation.id == operation_id,
        BatchOperation.status != STATUS_FINISHED,
    ]
    if stale_before is not None:
        conditions.append(BatchOperation.heartbeat < stale_before)
    changed = session.execute(
        update(BatchOperation).where(*conditions).values(**values)
    )
    return changed.rowcount == 1


def finish_if_complete(session: Session, operation_id: int) -> bool:
    """Finish the operation once every item is processed; exactly one caller wins."""
    processed = BatchOperation.done + BatchOperation.failed + BatchOperation.skipped
    claimed = session.execute(
        update(BatchOperation)
        .where(
            BatchOperation.id == operation_id,
            BatchOperation.status == STATUS_RUNNING,
            processed >= BatchOperation.total,
        )
        .values(status=STATUS_FINISHED, finished=utcnow(), active_key=None)
    )
    if claimed.rowcount != 1:
        return False
    operation = session.get(BatchOperation, operation_id, populate_existing=True)
    operation.result = result_from_counts(operation.done, operation.failed)
    return True


def fail_stale(
    session: Session, heartbeat_timeout: timedelta, now: datetime | None = None
) -> list[int]:
    """Mark active operations whose heartbeat stopped as failed; return their ids."""
    cutoff = (now or utcnow()) - heartbeat_timeout
    stale = session.scalars(
        select(BatchOperation.id).where(
            BatchOperation.status != STATUS_FINISHED,
            BatchOperation.heartbeat < cutoff,
        )
    ).all()
    failed = []
    for operation_id in stale:
        operation = session.get(BatchOperation, operation_id, populate_existing=True)
        result = RESULT_PARTIAL if operation.done else RESULT_FAILED
        if finish(
            session,
            operation_id,
            result=result,
            error="no heartbeat: the worker running it stopped",
            stale_before=cutoff,
        ):
            failed.append(operation_id)
    return failed

"""Create, advance and finish BatchOperations; plain functions over a session.

Callers commit. Progress and finishing are single conditional UPDATEs, so any
number of workers can report on one operation without lost updates.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tracker.batch import runners
from tracker.batch.models import (
    ITEM_CLAIMED,
    ITEM_DONE,
    ITEM_FAILED,
    ITEM_SKIPPED,
    RESULT_CANCELLED,
    RESULT_FAILED,
    RESULT_PARTIAL,
    RESULT_SKIPPED,
    RESULT_SUCCESSFUL,
    STATUS_FINISHED,
    STATUS_RUNNING,
    STATUS_UNPROCESSED,
    BatchItem,
    BatchOperation,
)
from tracker.db_types import utcnow

log = logging.getLogger(__name__)
ENDED_BADLY = (RESULT_FAILED, RESULT_PARTIAL)


def log_if_ended_badly(
    operation: BatchOperation, result: str, error: str | None = None
) -> None:
    """One log line for an operation that ended failed or partial."""
    if result not in ENDED_BADLY:
        return
    error = operation.error if error is None else error
    log.warning(
        "batch operation #%s %s (%s) ended %s: %s done, %s failed, %s skipped of %s%s",
        operation.id,
        operation.operation_type,
        operation.scope or "-",
        result,
        operation.done,
        operation.failed,
        operation.skipped,
        operation.total,
        f"; {error}" if error else "",
    )


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


RUNNER_GONE = "its process stopped before finishing (killed or interrupted)"


def _create(
    session: Session,
    operation_type: str,
    scope: str,
    status: str,
    input_data: dict[str, Any] | None,
    started_by_id: int | None,
    context: tuple[str, str] | None,
    runner: str | None = None,
) -> BatchOperation:
    def new_operation() -> BatchOperation:
        now = utcnow()
        return BatchOperation(
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
            runner=runner,
        )

    try:
        return _add(session, new_operation())
    except AlreadyActive as exc:
        existing = exc.existing
        if existing is None or not runners.is_gone(existing.runner):
            raise
        # Its process was killed on this host: close it, then take its place.
        close_unfinished(session, existing.id, RUNNER_GONE, utcnow())
        return _add(session, new_operation())


def _add(session: Session, operation: BatchOperation) -> BatchOperation:
    """Add ``operation``, or raise AlreadyActive with the one of its type and
    scope that is still active."""
    try:
        with session.begin_nested():
            session.add(operation)
    except IntegrityError:
        raise AlreadyActive(
            find_active(session, operation.operation_type, operation.scope)
        ) from None
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
    """Add an operation that the caller runs now, in this process: if the
    process running the one before it on this host is gone, that one is
    closed instead of refusing this one."""
    return _create(
        session,
        operation_type,
        scope,
        STATUS_RUNNING,
        input_data,
        started_by_id,
        context,
        runners.this_process(),
    )


def record_skipped(
    session: Session,
    operation_type: str,
    scope: str,
    reason: str,
    result: str = RESULT_SKIPPED,
) -> BatchOperation:
    """Record a run that did not start (say, because another is active, or
    because the broker could not take it: then ``result`` is failed)."""
    now = utcnow()
    operation = BatchOperation(
        operation_type=operation_type,
        scope=scope,
        status=STATUS_FINISHED,
        result=result,
        created=now,
        started=now,
        finished=now,
        error=reason,
    )
    session.add(operation)
    if result in ENDED_BADLY:
        session.flush()  # the log line names the operation's id
        log_if_ended_badly(operation, result)
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
    """Add to the counts and beat the heart; False once the operation stopped.

    Progress clears the count of re-sends without progress (see ``resume``).
    """
    values: dict[str, Any] = {
        "done": BatchOperation.done + done,
        "failed": BatchOperation.failed + failed,
        "skipped": BatchOperation.skipped + skipped,
        "heartbeat": utcnow(),
    }
    if done or failed or skipped:
        values["resumed"] = 0
    result = session.execute(
        update(BatchOperation)
        .where(
            BatchOperation.id == operation_id, BatchOperation.status == STATUS_RUNNING
        )
        .values(**values)
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
    if changed.rowcount != 1:
        return False
    log_if_ended_badly(operation, values["result"], error)
    return True


def finish_if_complete(
    session: Session, operation_id: int, result: str | None = None
) -> bool:
    """Finish the operation once every item is processed; exactly one caller wins.

    The result follows from the counts unless given (a crawl run that attempted
    every instance is successful, however many were down).
    """
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
    operation.result = result or result_from_counts(operation.done, operation.failed)
    log_if_ended_badly(operation, operation.result)
    return True


def stale_operations(
    session: Session,
    heartbeat_timeout: timedelta,
    now: datetime | None = None,
    types: Iterable[str] | None = None,
) -> list[int]:
    """Ids of the active operations (of ``types``, or any) whose heart stopped."""
    cutoff = (now or utcnow()) - heartbeat_timeout
    statement = select(BatchOperation.id).where(
        BatchOperation.status != STATUS_FINISHED, BatchOperation.heartbeat < cutoff
    )
    if types is not None:
        statement = statement.where(BatchOperation.operation_type.in_(list(types)))
    return list(session.scalars(statement.order_by(BatchOperation.id)))


def close_unfinished(
    session: Session, operation_id: int, error: str, stale_before: datetime
) -> bool:
    """Close an operation that cannot finish: partial if it processed some of
    its items, failed if none. False if its heart beat since ``stale_before``."""
    operation = session.get(BatchOperation, operation_id, populate_existing=True)
    if operation is None:
        return False
    result = RESULT_PARTIAL if operation.processed else RESULT_FAILED
    return finish(
        session, operation_id, result=result, error=error, stale_before=stale_before
    )


def fail_stale(
    session: Session,
    heartbeat_timeout: timedelta,
    now: datetime | None = None,
    keep: Iterable[str] = (),
) -> list[int]:
    """Mark active operations whose heartbeat stopped as failed (those of the
    types in ``keep`` excepted); return their ids."""
    now = now or utcnow()
    cutoff = now - heartbeat_timeout
    keep = set(keep)
    failed = []
    for operation_id in stale_operations(session, heartbeat_timeout, now):
        operation = session.get(BatchOperation, operation_id)
        if operation.operation_type in keep:
            continue
        if close_unfinished(
            session,
            operation_id,
            "worker lost: no heartbeat, the worker running it stopped",
            cutoff,
        ):
            failed.append(operation_id)
    return failed


def resume(
    session: Session, operation_id: int, fault: str, stale_before: datetime
) -> bool:
    """Take a stale operation's turn to be re-sent: note ``fault``, count the
    re-send and beat the heart. False if its heart beat since ``stale_before``
    or it finished (someone else is on it)."""
    changed = session.execute(
        update(BatchOperation)
        .where(
            BatchOperation.id == operation_id,
            BatchOperation.status != STATUS_FINISHED,
            BatchOperation.heartbeat < stale_before,
        )
        .values(resumed=BatchOperation.resumed + 1, heartbeat=utcnow(), fault=fault)
    )
    return changed.rowcount == 1


def note_fault(session: Session, operation_id: int, fault: str) -> None:
    """Keep ``fault`` as the last fault the operation met."""
    session.execute(
        update(BatchOperation)
        .where(BatchOperation.id == operation_id)
        .values(fault=fault)
    )


# --- items: each unit of work counted once per operation ---

# Items per statement: far below any database's limit of bound parameters.
ITEMS_PER_STATEMENT = 500


def _slices(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), ITEMS_PER_STATEMENT):
        yield list(ids[start : start + ITEMS_PER_STATEMENT])


def add_items(session: Session, operation_id: int, item_ids: Sequence[int]) -> None:
    """Add the operation's items, pending until settled."""
    if item_ids:
        session.execute(
            insert(BatchItem),
            [{"batch_operation_id": operation_id, "item_id": i} for i in item_ids],
        )


def pending_items(
    session: Session, operation_id: int, among: Sequence[int] | None = None
) -> list[int]:
    """Ids of the operation's items not settled yet (of ``among``), in order."""
    pending = (
        select(BatchItem.item_id)
        .where(
            BatchItem.batch_operation_id == operation_id, BatchItem.outcome.is_(None)
        )
        .order_by(BatchItem.item_id)
    )
    if among is None:
        return list(session.scalars(pending))
    found: list[int] = []
    for ids in _slices(among):
        found.extend(session.scalars(pending.where(BatchItem.item_id.in_(ids))))
    return sorted(found)


def claim_items(
    session: Session, operation_id: int, item_ids: Sequence[int]
) -> set[int]:
    """Claim the pending items among ``item_ids``; return those this caller got.

    A conditional UPDATE: of two deliveries of the same work, the second waits
    for the first to commit and then gets none of its items. Settle what you
    claim in the same transaction.
    """
    claimed: set[int] = set()
    for ids in _slices(item_ids):
        claimed.update(
            session.scalars(
                update(BatchItem)
                .where(
                    BatchItem.batch_operation_id == operation_id,
                    BatchItem.item_id.in_(ids),
                    BatchItem.outcome.is_(None),
                )
                .values(outcome=ITEM_CLAIMED)
                .returning(BatchItem.item_id)
            )
        )
    return claimed


ITEM_ERROR_MAX = 1000


def settle_items(
    session: Session,
    operation_id: int,
    outcomes: Mapping[int, tuple[str, str]],
) -> bool:
    """Settle claimed items as {item id: (done | failed | skipped, error)} and
    add them to the operation's counts; False once the operation stopped."""
    if outcomes:
        table = BatchItem.__table__
        session.execute(
            update(table)
            .where(
                table.c.batch_operation_id == operation_id,
                table.c.item_id == bindparam("settled_id"),
                table.c.outcome == ITEM_CLAIMED,
            )
            .values(outcome=bindparam("settled"), error=bindparam("settled_error")),
            [
                {
                    "settled_id": item_id,
                    "settled": outcome,
                    "settled_error": error[:ITEM_ERROR_MAX],
                }
                for item_id, (outcome, error) in outcomes.items()
            ],
        )
    counts = Counter(outcome for outcome, _ in outcomes.values())
    return add_progress(
        session,
        operation_id,
        done=counts[ITEM_DONE],
        failed=counts[ITEM_FAILED],
        skipped=counts[ITEM_SKIPPED],
    )


def item_errors(session: Session, operation_id: int) -> Counter[str]:
    """How many of the operation's failed or skipped items gave each error."""
    return Counter(
        dict(
            session.execute(
                select(BatchItem.error, func.count())
                .where(
                    BatchItem.batch_operation_id == operation_id,
                    BatchItem.outcome.in_((ITEM_FAILED, ITEM_SKIPPED)),
                )
                .group_by(BatchItem.error)
            ).all()
        )
    )


def prune_items(session: Session, keep_days: int) -> int:
    """Delete the items of operations finished more than ``keep_days`` ago."""
    cutoff = utcnow() - timedelta(days=keep_days)
    old = select(BatchOperation.id).where(
        BatchOperation.status == STATUS_FINISHED, BatchOperation.finished < cutoff
    )
    result = session.execute(
        delete(BatchItem).where(BatchItem.batch_operation_id.in_(old))
    )
    return result.rowcount or 0


CANCELLED_ERROR = "cancelled before it started"


def cancel_unstarted(session: Session, operation_id: int, by: str) -> bool:
    """Close an operation that no worker has started yet; False once one has
    (a conditional update: a worker that starts it first wins)."""
    result = session.execute(
        update(BatchOperation)
        .where(
            BatchOperation.id == operation_id,
            BatchOperation.status == STATUS_UNPROCESSED,
        )
        .values(
            status=STATUS_FINISHED,
            result=RESULT_CANCELLED,
            finished=utcnow(),
            active_key=None,
            error=f"{CANCELLED_ERROR} (by {by})",
        )
    )
    return result.rowcount == 1


def failed_item_ids(session: Session, operation_id: int) -> list[int]:
    """Ids of the operation's items that failed, in order."""
    return list(
        session.scalars(
            select(BatchItem.item_id)
            .where(
                BatchItem.batch_operation_id == operation_id,
                BatchItem.outcome == ITEM_FAILED,
            )
            .order_by(BatchItem.item_id)
        )
    )


def prune_operations(session: Session, keep_days: int) -> int:
    """Delete operations finished more than ``keep_days`` ago, with their items."""
    cutoff = utcnow() - timedelta(days=keep_days)
    old = select(BatchOperation.id).where(
        BatchOperation.status == STATUS_FINISHED, BatchOperation.finished < cutoff
    )
    ids = list(session.scalars(old))
    for chunk in _slices(ids):
        # Items go with their operation (ON DELETE CASCADE); deleted here too
        # so that the count does not depend on the database enforcing it.
        session.execute(
            delete(BatchItem).where(BatchItem.batch_operation_id.in_(chunk))
        )
        session.execute(delete(BatchOperation).where(BatchOperation.id.in_(chunk)))
    return len(ids)

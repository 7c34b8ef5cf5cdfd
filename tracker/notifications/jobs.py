"""Background jobs worth telling: failed, stuck (closed by housekeeping) or cut
short by a fault. An event source of the notifications."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from tracker.batch.models import (
    RESULT_FAILED,
    RESULT_PARTIAL,
    STATUS_FINISHED,
    BatchOperation,
)
from tracker.notifications.events import Event

LOOK_BACK = timedelta(days=1)


def job_events(session: Session, config: Mapping, now: datetime) -> Iterator[Event]:
    for operation in session.scalars(
        select(BatchOperation).where(
            BatchOperation.status == STATUS_FINISHED,
            BatchOperation.finished >= now - LOOK_BACK,
            or_(
                BatchOperation.result == RESULT_FAILED,
                (BatchOperation.result == RESULT_PARTIAL)
                & (BatchOperation.fault != ""),
            ),
        )
    ):
        what = operation.operation_type + (
            f" ({operation.context_type} {operation.context_id})"
            if operation.context_type
            else ""
        )
        verdict = "failed" if operation.result == RESULT_FAILED else "was cut short"
        yield Event(
            kind="job_failed",
            key=f"job:{operation.id}:{operation.result}",
            title=f"Background job #{operation.id} {what} {verdict}",
            body=operation.fault or operation.error or "",
        )

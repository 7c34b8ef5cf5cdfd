"""A pull of one quota, tracked as a BatchOperation; callers pass ``commit``."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from quota.controller import (
    Controller,
    Policy,
    PullSummary,
    QuotaNotActive,
    Transport,
)
from quota.models import ControllerQuota
from tracker.batch import operations

PULL_OPERATION = "quota-pull"


def run_pull(
    session: Session,
    quota: ControllerQuota,
    transport: Transport,
    commit: Callable[[], None],
    started_by_id: int | None = None,
    policy: Policy | None = None,
) -> tuple[int, PullSummary | None]:
    """Pull one quota; return its operation id and summary (None if skipped)."""
    scope = f"quota:{quota.id}"
    try:
        operation = operations.create_synchronous(
            session,
            PULL_OPERATION,
            scope,
            started_by_id=started_by_id,
            context=("quota", str(quota.id)),
        )
    except operations.AlreadyActive as exc:
        session.rollback()
        running = exc.existing.id if exc.existing else "?"
        skipped = operations.record_skipped(
            session,
            PULL_OPERATION,
            scope,
            f"skipped: pull #{running} is still running",
        )
        commit()
        return skipped.id, None
    operations.set_total(session, operation.id, len(quota.clients))
    commit()
    try:
        controller = Controller(session, quota, transport, commit, policy=policy)
        summary = controller.get_all()
        operations.add_progress(session, operation.id)  # still alive: beat the heart
        commit()
        summary.changed = controller.post_all()
    except QuotaNotActive as exc:
        session.rollback()
        operations.finish(session, operation.id, result="failed", error=str(exc))
        commit()
        return operation.id, None
    operations.add_progress(
        session, operation.id, done=summary.reached, failed=summary.unreachable
    )
    operations.finish(
        session,
        operation.id,
        output_data={
            "reached": summary.reached,
            "unreachable": summary.unreachable,
            "ceilings_changed": summary.changed,
        },
    )
    commit()
    return operation.id, summary

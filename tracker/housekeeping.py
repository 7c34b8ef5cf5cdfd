"""Periodic housekeeping: resume or close runs whose heartbeat stopped, then
each part's steps.

A part of the application adds a step (say, pruning old history) with
:func:`add_housekeeping_step`, and a way to re-send the unfinished work of its
stale operations with :func:`add_resumer`; the run records what each returned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from celery import shared_task
from flask import Flask, current_app
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.orm import Session

from tracker.background import add_periodic_task, broker_fault
from tracker.batch import operations
from tracker.batch.models import BatchOperation
from tracker.db_types import utcnow
from tracker.extensions import db

HOUSEKEEPING_OPERATION = "housekeeping"
HOUSEKEEPING_TASK = "tracker.housekeeping.housekeeping"
STEPS_KEY = "tracker.housekeeping_steps"
RESUMERS_KEY = "tracker.housekeeping_resumers"

# A step takes the session and the settings and returns a figure for the record.
HousekeepingStep = Callable[[Session, Mapping[str, Any]], Any]
# A resumer re-sends a stale operation's unfinished work (the operation is
# committed as resumed first) and says what it sent; a broker error propagates.
Resumer = Callable[[Session, BatchOperation, Mapping[str, Any]], str]


def add_housekeeping_step(app: Flask, name: str, step: HousekeepingStep) -> None:
    """Run ``step`` in every housekeeping run; its result is kept under ``name``."""
    app.extensions.setdefault(STEPS_KEY, {})[name] = step


def add_resumer(app: Flask, operation_type: str, resumer: Resumer) -> None:
    """Let housekeeping re-send the unfinished work of stale operations of
    ``operation_type`` (up to BATCH_MAX_RESUMES times without progress)
    instead of failing them at once."""
    app.extensions.setdefault(RESUMERS_KEY, {})[operation_type] = resumer


def recover_stale(
    session: Session,
    config: Mapping[str, Any],
    resumers: Mapping[str, Resumer],
) -> dict[str, list[int]]:
    """Resume the stale operations that can go on; close those that cannot,
    naming the fault. Commits after each operation (a resumed one before its
    work is sent). Return the ids resumed and closed."""
    timeout = config["BATCH_HEARTBEAT_TIMEOUT"]
    cutoff = utcnow() - timedelta(seconds=timeout)
    resumed: list[int] = []
    closed = operations.fail_stale(session, timedelta(seconds=timeout), keep=resumers)
    session.commit()
    stale = operations.stale_operations(
        session, timedelta(seconds=timeout), types=resumers
    )
    for operation_id in stale:
        operation = session.get(BatchOperation, operation_id, populate_existing=True)
        if operation.resumed >= config["BATCH_MAX_RESUMES"]:
            fault = operation.fault or "worker lost: no heartbeat"
            error = (
                f"{fault}; cannot finish: re-sent {operation.resumed} times "
                f"without progress, {operation.total - operation.processed} of "
                f"{operation.total} not attempted"
            )
            if operations.close_unfinished(session, operation_id, error, cutoff):
                closed.append(operation_id)
            session.commit()
            continue
        fault = f"worker lost: no heartbeat for {timeout} s"
        if not operations.resume(session, operation_id, fault, cutoff):
            session.rollback()
            continue
        session.commit()
        try:
            sent = resumers[operation.operation_type](session, operation, config)
        except BrokerError as exc:
            session.rollback()
            operations.note_fault(session, operation_id, broker_fault(exc))
        else:
            operations.note_fault(session, operation_id, f"{fault}; {sent}")
        session.commit()
        resumed.append(operation_id)
    return {"resumed": resumed, "closed": closed}


@shared_task(name=HOUSEKEEPING_TASK, ignore_result=True)
def housekeeping() -> None:
    """Resume or fail stale batch operations, then run every step; recorded as
    an operation."""
    config = current_app.config
    recovered = recover_stale(
        db.session, config, current_app.extensions.get(RESUMERS_KEY, {})
    )
    try:
        operation = operations.create_synchronous(db.session, HOUSEKEEPING_OPERATION)
    except operations.AlreadyActive:
        db.session.rollback()
        return
    db.session.commit()
    output: dict[str, Any] = {
        "failed_stale_operations": recovered["closed"],
        "resumed_stale_operations": recovered["resumed"],
        "pruned_batch_items": operations.prune_items(
            db.session, config["BATCH_ITEM_DAYS"]
        ),
        "pruned_batch_operations": operations.prune_operations(
            db.session, config["BATCH_OPERATION_DAYS"]
        ),
    }
    for name, step in current_app.extensions.get(STEPS_KEY, {}).items():
        output[name] = step(db.session, config)
    operations.finish(db.session, operation.id, output_data=output)
    db.session.commit()


def init_app(app: Flask) -> None:
    """Schedule housekeeping every HOUSEKEEPING_INTERVAL seconds."""
    add_periodic_task(
        app,
        "housekeeping",
        HOUSEKEEPING_TASK,
        app.config["HOUSEKEEPING_INTERVAL"],
        operation=(HOUSEKEEPING_OPERATION, ""),
    )

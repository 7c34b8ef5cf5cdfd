"""Periodic housekeeping: fail runs whose heartbeat stopped, then each part's steps.

A part of the application adds a step (say, pruning old history) with
:func:`add_housekeeping_step`; the run records what every step returned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from celery import shared_task
from flask import Flask, current_app
from sqlalchemy.orm import Session

from tracker.background import add_periodic_task
from tracker.batch import operations
from tracker.extensions import db

HOUSEKEEPING_OPERATION = "housekeeping"
HOUSEKEEPING_TASK = "tracker.housekeeping.housekeeping"
STEPS_KEY = "tracker.housekeeping_steps"

# A step takes the session and the settings and returns a figure for the record.
HousekeepingStep = Callable[[Session, Mapping[str, Any]], Any]


def add_housekeeping_step(app: Flask, name: str, step: HousekeepingStep) -> None:
    """Run ``step`` in every housekeeping run; its result is kept under ``name``."""
    app.extensions.setdefault(STEPS_KEY, {})[name] = step


@shared_task(name=HOUSEKEEPING_TASK, ignore_result=True)
def housekeeping() -> None:
    """Fail stale batch operations, then run every step; recorded as an operation."""
    config = current_app.config
    stale = operations.fail_stale(
        db.session, timedelta(seconds=config["BATCH_HEARTBEAT_TIMEOUT"])
    )
    db.session.commit()
    try:
        operation = operations.create_synchronous(db.session, HOUSEKEEPING_OPERATION)
    except operations.AlreadyActive:
        db.session.rollback()
        return
    db.session.commit()
    output: dict[str, Any] = {"failed_stale_operations": stale}
    for name, step in current_app.extensions.get(STEPS_KEY, {}).items():
        output[name] = step(db.session, config)
    operations.finish(db.session, operation.id, output_data=output)
    db.session.commit()


def init_app(app: Flask) -> None:
    """Schedule housekeeping every HOUSEKEEPING_INTERVAL seconds."""
    add_periodic_task(
        app, "housekeeping", HOUSEKEEPING_TASK, app.config["HOUSEKEEPING_INTERVAL"]
    )

"""Periodic housekeeping: fail runs whose heartbeat stopped, prune old history."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from flask import current_app

from tracker.batch import operations
from tracker.extensions import db
from tracker.instances.crawling import prune_history

HOUSEKEEPING_OPERATION = "housekeeping"


@shared_task(name="tracker.housekeeping.housekeeping", ignore_result=True)
def housekeeping() -> None:
    """Fail stale batch operations and prune crawl history; recorded as an operation."""
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
    pruned = prune_history(db.session, config["CRAWL_HISTORY_DAYS"])
    operations.finish(
        db.session,
        operation.id,
        output_data={"failed_stale_operations": stale, "pruned_crawl_results": pruned},
    )
    db.session.commit()

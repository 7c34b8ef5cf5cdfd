"""Retrying what failed in a finished operation.

The batch package does not know how to run an operation type again; the part
of the application that runs it says so with :func:`add_retrier` (the
registry: a crawl run's failed instances are crawled again in a new run).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flask import Flask
from sqlalchemy.orm import Session

from tracker.batch.models import (
    RESULT_FAILED,
    RESULT_PARTIAL,
    STATUS_FINISHED,
    BatchOperation,
)

RETRIERS_KEY = "tracker.batch_retriers"
RETRIABLE_RESULTS = (RESULT_FAILED, RESULT_PARTIAL)

# Takes the session, the finished operation, the ids of its failed items and
# the user's id; starts (and commits) a new operation and returns it. Raises
# operations.AlreadyActive, or QueueRefused when the work cannot be queued.
Retrier = Callable[[Session, BatchOperation, Sequence[int], int], BatchOperation]


class QueueRefused(Exception):
    """The retry could not be queued; its new operation was closed as failed."""


def add_retrier(app: Flask, operation_type: str, retrier: Retrier) -> None:
    """Let the dashboard retry failed or partial operations of ``operation_type``."""
    app.extensions.setdefault(RETRIERS_KEY, {})[operation_type] = retrier


def retrier_for(app: Flask, operation: BatchOperation) -> Retrier | None:
    """How to retry ``operation``, or None if it cannot be retried (not
    finished, nothing failed, or no part of the app knows its type)."""
    if operation.status != STATUS_FINISHED:
        return None
    if not operation.failed and operation.result not in RETRIABLE_RESULTS:
        return None
    return app.extensions.get(RETRIERS_KEY, {}).get(operation.operation_type)

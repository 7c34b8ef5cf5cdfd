"""BatchOperation: one row per background or bulk job, with status and progress."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tracker.db_types import UTCDateTime, utcnow
from tracker.extensions import db

STATUS_UNPROCESSED = "unprocessed"
STATUS_RUNNING = "running"
STATUS_FINISHED = "finished"
STATUSES = (STATUS_UNPROCESSED, STATUS_RUNNING, STATUS_FINISHED)

RESULT_NOT_AVAILABLE = "not-available"
RESULT_SUCCESSFUL = "successful"
RESULT_PARTIAL = "partial"
RESULT_FAILED = "failed"
RESULT_SKIPPED = "skipped"
RESULT_CANCELLED = "cancelled"
RESULTS = (
    RESULT_NOT_AVAILABLE,
    RESULT_SUCCESSFUL,
    RESULT_PARTIAL,
    RESULT_FAILED,
    RESULT_SKIPPED,
    RESULT_CANCELLED,
)


class BatchOperation(db.Model):
    """A tracked job. ``active_key`` is unique while the job is active, so the
    database itself allows only one active operation per (type, scope)."""

    __tablename__ = "batch_operations"

    id: Mapped[int] = mapped_column(primary_key=True)
    operation_type: Mapped[str] = mapped_column(String(64), index=True)
    scope: Mapped[str] = mapped_column(String(128), default="")
    context_type: Mapped[str | None] = mapped_column(String(64))
    context_id: Mapped[str | None] = mapped_column(String(64))
    started_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=STATUS_UNPROCESSED)
    result: Mapped[str] = mapped_column(String(16), default=RESULT_NOT_AVAILABLE)
    total: Mapped[int] = mapped_column(default=0)
    done: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    input_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    output_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    # The last fault the job met, survived or not (worker lost, broker lost,
    # database unreachable), and how often housekeeping re-sent its work since
    # it last made progress.
    fault: Mapped[str] = mapped_column(Text, default="", server_default="")
    resumed: Mapped[int] = mapped_column(default=0, server_default="0")
    active_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # The process running a synchronous operation: "host pid start".
    runner: Mapped[str | None] = mapped_column(String(255))

    @property
    def processed(self) -> int:
        return self.done + self.failed + self.skipped

    @property
    def is_active(self) -> bool:
        return self.status != STATUS_FINISHED

    @property
    def notice(self) -> str:
        """What the job wants its reader to know beside its counts."""
        return str(self.output_data.get(NOTICE_KEY) or "")


# An item's outcome: pending (None) until settled as one of these.
ITEM_DONE = "done"
ITEM_FAILED = "failed"
ITEM_SKIPPED = "skipped"
ITEM_OUTCOMES = (ITEM_DONE, ITEM_FAILED, ITEM_SKIPPED)
# Held only inside the transaction that claims an item and settles it.
ITEM_CLAIMED = "claimed"
NOTICE_KEY = "notice"


class BatchItem(db.Model):
    """One unit of work of an operation (say, one instance of a crawl run).

    The primary key makes each item count once per operation, however often a
    redelivered task reports it: progress comes from the items actually settled.
    """

    __tablename__ = "batch_items"

    batch_operation_id: Mapped[int] = mapped_column(
        ForeignKey("batch_operations.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outcome: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str] = mapped_column(Text, default="")

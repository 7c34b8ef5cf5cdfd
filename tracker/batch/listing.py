"""The background jobs page's filters: what the query string asks for, as one
SELECT that the page paginates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select

from tracker.batch.models import RESULTS, STATUSES, BatchOperation

TYPE_LENGTH = 64


def day_or_none(raw: str | None) -> date | None:
    """The ISO date ``raw`` names, or None for nothing or nonsense."""
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


@dataclass(frozen=True)
class OperationQuery:
    """Filters of the jobs list; every value already checked (nonsense is
    ignored, as on the instance list)."""

    operation_type: str | None = None
    status: str | None = None
    result: str | None = None
    since: date | None = None
    until: date | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> OperationQuery:
        """Read the page's query arguments."""
        status = args.get("status")
        result = args.get("result")
        return cls(
            operation_type=(args.get("type") or "").strip()[:TYPE_LENGTH] or None,
            status=status if status in STATUSES else None,
            result=result if result in RESULTS else None,
            since=day_or_none(args.get("since")),
            until=day_or_none(args.get("until")),
        )

    def as_args(self, **changes: object) -> dict[str, str]:
        """Query arguments that reproduce these filters, with some changed."""
        values = {
            "type": self.operation_type or "",
            "status": self.status or "",
            "result": self.result or "",
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
        }
        values.update({k: str(v) for k, v in changes.items()})
        return {k: v for k, v in values.items() if v}


def operations_statement(query: OperationQuery, zone: ZoneInfo) -> Select:
    """Operations matching ``query``, newest first; the dates are whole days
    in ``zone`` (the dashboard's time zone), both included."""
    statement = select(BatchOperation)
    if query.operation_type:
        statement = statement.where(
            BatchOperation.operation_type == query.operation_type
        )
    if query.status:
        statement = statement.where(BatchOperation.status == query.status)
    if query.result:
        statement = statement.where(BatchOperation.result == query.result)
    statement = within_days(
        statement, BatchOperation.created, query.since, query.until, zone
    )
    return statement.order_by(BatchOperation.id.desc())


def within_days(
    statement: Select, column, since: date | None, until: date | None, zone: ZoneInfo
) -> Select:
    """``statement`` limited to ``column`` on the days ``since`` to ``until``
    in ``zone``, both included (either may be None)."""
    if since:
        statement = statement.where(column >= datetime.combine(since, time(), zone))
    if until:
        end = datetime.combine(until + timedelta(days=1), time(), zone)
        statement = statement.where(column < end)
    return statement

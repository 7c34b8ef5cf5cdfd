"""The audit trail's filters (user, domain, action, target, dates), read from a
query string, as one SELECT that the page and the API paginate."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select

from tracker.api import invalid
from tracker.audit.models import AuditEvent
from tracker.batch.listing import day_or_none, within_days

TEXT_LENGTH = 100
TEXT_FILTERS = ("user", "domain", "action", "target_type", "target_id")


@dataclass(frozen=True)
class AuditQuery:
    user: str | None = None
    domain: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: date | None = None
    until: date | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str], strict: bool = False) -> AuditQuery:
        """Read the filters; with ``strict`` (the API), a date that is not one
        is a 400 naming it, otherwise it is ignored (the page)."""
        days = {}
        for name in ("since", "until"):
            raw = args.get(name) or None
            days[name] = day_or_none(raw)
            if strict and raw and days[name] is None:
                raise invalid(name, "must be a date, YYYY-MM-DD")
        texts = {
            name: (args.get(name) or "").strip()[:TEXT_LENGTH] or None
            for name in TEXT_FILTERS
        }
        return cls(**texts, **days)

    def as_args(self, **changes: object) -> dict[str, str]:
        """Query arguments that reproduce these filters, with some changed."""
        values = {name: getattr(self, name) or "" for name in TEXT_FILTERS}
        values["since"] = self.since.isoformat() if self.since else ""
        values["until"] = self.until.isoformat() if self.until else ""
        values.update({k: str(v) for k, v in changes.items()})
        return {k: v for k, v in values.items() if v}


def events_statement(query: AuditQuery, zone: ZoneInfo) -> Select:
    """Events matching ``query``, newest first; dates are whole days in ``zone``."""
    statement = select(AuditEvent)
    # Names as typed: in any letter case (user names differ by more than case).
    if query.user:
        statement = statement.where(func.lower(AuditEvent.actor) == query.user.lower())
    for name in ("domain", "action", "target_type"):
        value = getattr(query, name)
        if value:
            column = getattr(AuditEvent, name)
            statement = statement.where(func.lower(column) == value.lower())
    if query.target_id:
        statement = statement.where(AuditEvent.target_id == query.target_id)
    statement = within_days(statement, AuditEvent.at, query.since, query.until, zone)
    return statement.order_by(AuditEvent.id.desc())


def serialize(event: AuditEvent) -> dict:
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "actor": event.actor,
        "user_id": event.user_id,
        "via": event.via,
        "domain": event.domain,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "summary": event.summary,
        "changes": event.changes,
        "remote_addr": event.remote_addr,
    }

"""Contact from an instance, through whichever channel it came.

A registration, a client's PATCH (even an empty one), a heartbeat, a
successful crawl or a linked device's quota or sync exchange: each is contact,
recorded as the instance's last contact and, except crawls (which have their
crawl history), as a contact event for the uptime. Plain functions; the caller
commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from tracker.db_types import utcnow
from tracker.instances.crawler import Endpoint
from tracker.instances.models import VIA_HEARTBEAT, ContactEvent, Instance
from tracker.instances.recording import daily_rows, merged_sources, with_heartbeat
from tracker.instances.tallies import write_daily_values


def note_contact(
    session: Session, instance: Instance, via: str, at: datetime | None = None
) -> None:
    """Record contact with a stored (flushed) instance."""
    at = at or utcnow()
    if instance.last_contact is None or instance.last_contact <= at:
        instance.last_contact = at
        instance.last_contact_via = via
        instance.state = None  # to be judged again
    session.add(ContactEvent(instance_id=instance.id, at=at, via=via))


def prune_contacts(session: Session, keep_days: int) -> int:
    """Delete contact events older than ``keep_days``; return how many."""
    result = session.execute(
        delete(ContactEvent).where(
            ContactEvent.at < utcnow() - timedelta(days=keep_days)
        )
    )
    return result.rowcount


def record_heartbeat(
    session: Session,
    instance: Instance,
    values: dict,
    endpoints: Sequence[Endpoint],
    daily_fields: Mapping[str, str | None],
) -> None:
    """A heartbeat: contact, and values that join the instance's crawled ones
    (under what its endpoints answer) and its charts' daily values."""
    now = utcnow()
    note_contact(session, instance, VIA_HEARTBEAT, now)
    if not values:
        return
    instance.heartbeat_values = values
    merged = with_heartbeat(
        values, merged_sources(instance.crawled_sources or {}, endpoints)
    )
    instance.crawled = merged
    write_daily_values(
        session, daily_rows(instance.id, now.date(), merged, daily_fields)
    )


def note_contact_of(
    session: Session, instance_id: int, via: str, at: datetime | None = None
) -> None:
    """Contact of a device linked to the instance ``instance_id``, if it exists."""
    instance = session.get(Instance, instance_id)
    if instance is not None:
        note_contact(session, instance, via, at)

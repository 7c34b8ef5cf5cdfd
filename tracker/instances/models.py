"""The instance registry's data: instances, their crawl state and history."""

from __future__ import annotations

import uuid as uuid_module
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    delete,
    event,
    false,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from tracker.db_types import UTCDateTime, utcnow
from tracker.extensions import db

URL_MAX = 2000
TEXT_MAX = 255
EMAIL_MAX = 254

HEALTH_UP = "up"
HEALTH_DOWN = "down"
HEALTH_UNKNOWN = "unknown"
HEALTHS = (HEALTH_UP, HEALTH_DOWN, HEALTH_UNKNOWN)

# The channels contact comes through (Instance.last_contact_via).
VIA_REGISTRATION = "registration"
VIA_UPDATE = "update"
VIA_HEARTBEAT = "heartbeat"
VIA_CRAWL = "crawl"
VIA_QUOTA = "quota"
VIA_SYNC = "sync"


def new_uuid() -> str:
    return str(uuid_module.uuid4())


class Instance(db.Model):
    """A deployment that registered itself; its uuid is its credential."""

    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    # Whether the instance is tracked: its client has not switched tracking off
    # and no admin has disabled it. Kept in step by tracker.instances.changes.
    enabled: Mapped[bool] = mapped_column(default=True, index=True)
    # What the client last said about itself ("enabled" in its PATCH)...
    client_enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
    # ...and an admin's disable, which no client request lifts.
    admin_disabled: Mapped[bool] = mapped_column(default=False, server_default=false())
    url: Mapped[str] = mapped_column(String(URL_MAX))
    contact: Mapped[str] = mapped_column(String(TEXT_MAX))
    email: Mapped[str] = mapped_column(String(EMAIL_MAX))
    organisation: Mapped[str] = mapped_column(String(TEXT_MAX), index=True)
    registered: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, index=True
    )
    # When the instance's own fields last changed (not its crawl state).
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Crawled only once accepted, when CRAWL_REQUIRE_APPROVAL is on.
    approved: Mapped[bool] = mapped_column(default=False)

    # The latest crawl attempt.
    health: Mapped[str] = mapped_column(String(16), default=HEALTH_UNKNOWN, index=True)
    last_attempt: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_duration_ms: Mapped[int | None]
    last_status: Mapped[int | None]
    last_error: Mapped[str] = mapped_column(Text, default="")
    # Latest values merged over the endpoints, and each endpoint's own latest values.
    crawled: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    crawled_sources: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # What the instance last sent in a heartbeat; merged under the endpoints' values.
    heartbeat_values: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    # Location: from GeoIP, or set by hand (then crawls leave it alone).
    address: Mapped[str | None] = mapped_column(String(45))
    country_code: Mapped[str | None] = mapped_column(String(2), index=True)
    country_name: Mapped[str | None] = mapped_column(String(100))
    city: Mapped[str | None] = mapped_column(String(200))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    accuracy_km: Mapped[int | None]
    location_manual: Mapped[bool] = mapped_column(default=False)

    # Contact from any channel (tracker.instances.contact) and what is expected
    # of it (tracker.instances.states): check in every contact_every seconds,
    # late for contact_grace more; unset, the organisation's default applies.
    last_contact: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    last_contact_via: Mapped[str | None] = mapped_column(String(16))
    # The first failed attempt after the last success.
    down_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    contact_every: Mapped[int | None]
    contact_grace: Mapped[int | None]
    # The state last judged (tracker.instances.fleet), valid until state_until;
    # NULL once anything it depends on changes, until it is judged again.
    state: Mapped[str | None] = mapped_column(String(16), index=True)
    state_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    state_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    state_until: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class CrawlResult(db.Model):
    """One crawl attempt of one instance, kept for CRAWL_HISTORY_DAYS."""

    __tablename__ = "crawl_results"
    __table_args__ = (
        Index("ix_crawl_results_instance_time", "instance_id", "crawled_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE")
    )
    batch_operation_id: Mapped[int | None] = mapped_column(
        ForeignKey("batch_operations.id", ondelete="SET NULL")
    )
    crawled_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    health: Mapped[str] = mapped_column(String(16))
    status: Mapped[int | None]
    duration_ms: Mapped[int]
    error: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The answer exceeded CRAWL_HISTORY_MAX_BYTES: only the configured fields kept.
    data_trimmed: Mapped[bool] = mapped_column(default=False, server_default=false())


class DailyValue(db.Model):
    """One instance's value of a charted field on one day (the day's last crawl).

    Kept for the fields drawn as lines over time, so the statistics page folds a
    few plain numbers per instance and day instead of the whole crawl history.
    A value that is present but not a number is kept as NULL: it still counts.
    """

    __tablename__ = "daily_values"

    field: Mapped[str] = mapped_column(String(100), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    instance_id: Mapped[int] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True
    )
    value: Mapped[float | None] = mapped_column(Float)


class DailyTotal(db.Model):
    """The daily values of one field on one day, added up as they are written:
    how many instances have one, how many of those are numbers, and their sum.
    The statistics page reads these few rows instead of every daily value."""

    __tablename__ = "daily_totals"

    field: Mapped[str] = mapped_column(String(100), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    instances: Mapped[int] = mapped_column(default=0)
    numbers: Mapped[int] = mapped_column(default=0)
    total: Mapped[float] = mapped_column(Float, default=0.0)


class ChartEntry(db.Model):
    """What one enabled instance adds to one chart: a category it counts in, or
    the group its number is added to (``number``). ``chart`` names the field and
    how it is charted, so entries of a changed setting are never mixed in."""

    __tablename__ = "chart_entries"

    chart: Mapped[str] = mapped_column(String(120), primary_key=True)
    instance_id: Mapped[int] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    label: Mapped[str] = mapped_column(String(TEXT_MAX), primary_key=True)
    number: Mapped[float | None] = mapped_column(Float)


class ChartTotal(db.Model):
    """The chart entries of one category, added up as they are written."""

    __tablename__ = "chart_totals"

    chart: Mapped[str] = mapped_column(String(120), primary_key=True)
    label: Mapped[str] = mapped_column(String(TEXT_MAX), primary_key=True)
    instances: Mapped[int] = mapped_column(default=0)
    total: Mapped[float] = mapped_column(Float, default=0.0)


class ChartBuilt(db.Model):
    """A chart whose entries were built from every instance: from then on they
    are kept up to date as instances change."""

    __tablename__ = "charts_built"

    chart: Mapped[str] = mapped_column(String(120), primary_key=True)
    built: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RegistrationKey(db.Model):
    """An ``Idempotency-Key`` a client sent with a registration, kept for a day,
    so that a retried POST answers the instance the first one created."""

    __tablename__ = "registration_keys"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # a digest
    fingerprint: Mapped[str] = mapped_column(String(64))  # of the registration
    instance_id: Mapped[int] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE"), index=True
    )
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ContactEvent(db.Model):
    """One contact from an instance other than a crawl (those are its crawl
    history): a registration, a client's PATCH, a heartbeat, a linked device's
    quota or sync exchange. Kept for CRAWL_HISTORY_DAYS, for the uptime."""

    __tablename__ = "contact_events"
    __table_args__ = (Index("ix_contact_events_instance_time", "instance_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE")
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    via: Mapped[str] = mapped_column(String(16))


class InstanceTag(db.Model):
    """An admin's label on an instance: for filters, discovery and routing."""

    __tablename__ = "instance_tags"

    instance_id: Mapped[int] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class OrganisationDefault(db.Model):
    """The contact expected of an organisation's instances that set none."""

    __tablename__ = "organisation_defaults"

    organisation: Mapped[str] = mapped_column(String(TEXT_MAX), primary_key=True)
    contact_every: Mapped[int | None]
    contact_grace: Mapped[int | None]


PAUSE_INSTANCE = "instance"
PAUSE_TAG = "tag"
PAUSE_ORGANISATION = "organisation"
PAUSE_KINDS = (PAUSE_INSTANCE, PAUSE_TAG, PAUSE_ORGANISATION)


class Pause(db.Model):
    """Maintenance: an instance, a tag or an organisation paused until a time;
    paused instances raise no alerts and are shown as paused."""

    __tablename__ = "pauses"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    # The instance's number, the tag or the organisation.
    value: Mapped[str] = mapped_column(String(TEXT_MAX))
    until: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    note: Mapped[str] = mapped_column(String(TEXT_MAX), default="")
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@event.listens_for(Instance, "after_delete")
def _end_its_pause(_mapper, connection, instance: Instance) -> None:
    # A pause names its instance by number, which a later instance may get.
    connection.execute(
        delete(Pause).where(
            Pause.kind == PAUSE_INSTANCE, Pause.value == str(instance.id)
        )
    )

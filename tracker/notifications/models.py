"""Notifications: what happened, where it went, and which alerts are open."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from tracker.db_types import UTCDateTime, utcnow
from tracker.extensions import db

PENDING = "pending"
SENT = "sent"
FAILED = "failed"


class Notification(db.Model):
    """One thing worth telling: an alert, its recovery, or a one-off event."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    # What it is about, unique for one-off events (so none is told twice).
    key: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(40))  # see settings.EVENT_KINDS
    # An alert (a condition that began) or its recovery, not a one-off event.
    alert: Mapped[bool] = mapped_column(default=False, server_default=false())
    recovery: Mapped[bool] = mapped_column(default=False)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    organisation: Mapped[str | None] = mapped_column(String(255))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Delivery(db.Model):
    """A notification to one destination (an entry of NOTIFICATION_URLS)."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (Index("ix_notification_deliveries_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), index=True
    )
    # The URL with its secrets masked, as the page shows it.
    destination: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Not sent again before this (a doubling wait after each failed attempt).
    next_attempt: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Which sending task holds it, since when: two tasks never send one twice.
    claim: Mapped[str | None] = mapped_column(String(32))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OpenAlert(db.Model):
    """A condition announced and not yet recovered: announced once, recovered once."""

    __tablename__ = "open_alerts"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(300))
    opened: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

"""The audit trail's one table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tracker.db_types import UTCDateTime, utcnow
from tracker.extensions import db


class AuditEvent(db.Model):
    """One state-changing action: who, when, in which domain, what, and the
    fields it changed (old and new) where they are known."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # The user name at the time (kept when the user is deleted), "manage.py",
    # "system" (background jobs) or "anonymous" (an instance or a device).
    actor: Mapped[str] = mapped_column(String(100), default="")
    # How: page, api, cli or system.
    via: Mapped[str] = mapped_column(String(16), default="")
    domain: Mapped[str] = mapped_column(String(32), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str] = mapped_column(String(40), default="")
    target_id: Mapped[str] = mapped_column(String(100), default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    # {field: [old, new]} for an update; {field: value} for a create or delete.
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    remote_addr: Mapped[str] = mapped_column(String(64), default="")

    __table_args__ = (Index("ix_audit_events_target", "target_type", "target_id"),)

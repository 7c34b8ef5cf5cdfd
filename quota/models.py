"""The quota controller's data: quotas, their field clients, history, approvals."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, String, Text, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker.db_types import EncryptedText, UTCDateTime, utcnow
from tracker.extensions import db


class ControllerQuota(db.Model):
    """An overall target for one kind of record, split among field clients."""

    __tablename__ = "quota_quotas"

    id: Mapped[int] = mapped_column(primary_key=True)
    record_kind: Mapped[str] = mapped_column(String(100), unique=True)
    target: Mapped[int]
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_expires: Mapped[datetime] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(default=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # What removed clients, and installs of a device since wiped, created or
    # may still create beyond what was seen: it stays counted.
    retired: Mapped[int] = mapped_column(default=0, server_default="0")

    clients: Mapped[list[QuotaClient]] = relationship(
        back_populates="quota", cascade="all, delete-orphan", order_by="QuotaClient.id"
    )


class QuotaClient(db.Model):
    """A field client of a quota, as the controller last knew it.

    ``acknowledged`` is the ceiling the client last confirmed; ``pending`` a raise
    that was sent but not confirmed. Until a report settles it, the controller
    assumes the larger of the two, so the sum of ceilings never passes the target.

    ``count`` and the ceilings count every record the client ever created in
    the window, across reinstalls: ``earlier`` is what earlier installs of the
    device created (a device's own count restarts at 0 when its database is
    wiped), so the device's ceiling is ``acknowledged - earlier``.
    """

    __tablename__ = "quota_clients"
    __table_args__ = (UniqueConstraint("quota_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    quota_id: Mapped[int] = mapped_column(
        ForeignKey("quota_quotas.id", ondelete="CASCADE")
    )
    instance_id: Mapped[int | None] = mapped_column(
        ForeignKey("instances.id", ondelete="SET NULL")
    )
    name: Mapped[str] = mapped_column(String(100))
    endpoint: Mapped[str] = mapped_column(String(2000))
    # Kept encrypted at rest (tracker.crypto); at most 200 characters in clear.
    secret: Mapped[str] = mapped_column(EncryptedText)
    acknowledged: Mapped[int] = mapped_column(default=0)
    pending: Mapped[int | None]
    # The lease end of the pending raise: past it plus the clock bound, a
    # message still on its way can no longer take effect on the device.
    pending_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(default=0)
    rate: Mapped[float] = mapped_column(Float, default=0.0)
    last_contact: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    earlier: Mapped[int] = mapped_column(default=0, server_default="0")
    reinstalled: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The name of the install the device last reported (its quota row's): a
    # new name means the device was wiped and installed again.
    install: Mapped[str | None] = mapped_column(String(32))
    # The device clock minus the controller's at the last exchange, in seconds.
    clock_skew: Mapped[float | None] = mapped_column(Float)
    # Administration: a larger weight gets a larger share of the headroom;
    # max_ceiling caps the ceiling; an inactive client gets no more headroom.
    weight: Mapped[float] = mapped_column(Float, default=1.0, server_default="1.0")
    max_ceiling: Mapped[int | None]
    active: Mapped[bool] = mapped_column(default=True, server_default=true())

    quota: Mapped[ControllerQuota] = relationship(back_populates="clients")


class QuotaHistory(db.Model):
    """One event of a quota: a report, a ceiling change, an override, an error."""

    __tablename__ = "quota_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    quota_id: Mapped[int] = mapped_column(
        ForeignKey("quota_quotas.id", ondelete="CASCADE")
    )
    client_id: Mapped[int | None] = mapped_column(
        ForeignKey("quota_clients.id", ondelete="SET NULL")
    )
    # Kept when the client is removed, so that the history still names it.
    client_name: Mapped[str] = mapped_column(String(100), default="", server_default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    event: Mapped[str] = mapped_column(String(20))
    # Who or what made the change: a user's name, "pull", "check-in".
    actor: Mapped[str] = mapped_column(String(100), default="", server_default="")
    count: Mapped[int | None]
    ceiling: Mapped[int | None]
    detail: Mapped[str] = mapped_column(Text, default="")


class QuotaApproval(db.Model):
    """An override a supervisor approved; its nonce comes from the request code."""

    __tablename__ = "quota_approvals"

    id: Mapped[int] = mapped_column(primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[int] = mapped_column(
        ForeignKey("quota_clients.id", ondelete="CASCADE")
    )
    extra: Mapped[int]
    expires: Mapped[datetime] = mapped_column(UTCDateTime)
    # Its records stay held until then: the expiry plus the clock bound.
    held_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used: Mapped[bool] = mapped_column(default=False)
    approved_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

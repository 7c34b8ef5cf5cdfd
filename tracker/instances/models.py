"""The instance registry's data."""

from __future__ import annotations

import uuid as uuid_module
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from tracker.db_types import UTCDateTime, utcnow
from tracker.extensions import db

URL_MAX = 2000
TEXT_MAX = 255
EMAIL_MAX = 254


def new_uuid() -> str:
    return str(uuid_module.uuid4())


class Instance(db.Model):
    """A deployment that registered itself; its uuid is its credential."""

    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    enabled: Mapped[bool] = mapped_column(default=True, index=True)
    url: Mapped[str] = mapped_column(String(URL_MAX))
    contact: Mapped[str] = mapped_column(String(TEXT_MAX))
    email: Mapped[str] = mapped_column(String(EMAIL_MAX))
    organisation: Mapped[str] = mapped_column(String(TEXT_MAX), index=True)
    registered: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, index=True
    )
    updated: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )

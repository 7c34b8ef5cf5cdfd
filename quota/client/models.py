"""Quota enforcement inside a field application's own database.

The field application declares the quota tables on its declarative base and marks
the models to count with ``QuotaMixin``::

    Quota, QuotaOverride = quota_models(db.Model)

    class Visit(QuotaMixin, db.Model):
        quota_kind = "visit"

Every insert of a ``Visit`` first runs one conditional UPDATE of its quota row in
the same transaction: the count goes up only while it is below the ceiling and the
window is open. The database serialises those updates, so threads and processes
inserting at once can never pass the ceiling; a rolled-back insert takes its count
back with it.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    MetaData,
    String,
    Table,
    event,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

_QUOTA_TABLES: dict[MetaData, Table] = {}


class QuotaReachedError(Exception):
    """The record kind's ceiling is reached: no more creations without an override."""


class QuotaNotSetOrExpiredError(Exception):
    """No quota window is open for this record kind."""


def now_timestamp() -> int:
    return int(time.time())


def quota_models(base: type) -> tuple[type, type]:
    """Declare the ``client_quotas`` and ``client_quota_overrides`` tables on the
    application's declarative base; return their classes."""

    class Quota(base):
        __tablename__ = "client_quotas"

        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        record_kind: Mapped[str] = mapped_column(String(100), unique=True)
        ceiling: Mapped[int] = mapped_column(Integer, default=0)
        count: Mapped[int] = mapped_column(Integer, default=0)
        # Unix times: the window is open while start <= now < expires.
        window_start: Mapped[int] = mapped_column(BigInteger, default=0)
        window_expires: Mapped[int] = mapped_column(BigInteger, default=0)

        @property
        def target(self) -> int:
            return self.ceiling

        @property
        def model_count(self) -> int:
            return self.count

    class QuotaOverride(base):
        """Approval codes already used: a nonce is accepted once."""

        __tablename__ = "client_quota_overrides"

        nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
        record_kind: Mapped[str] = mapped_column(String(100))
        extra: Mapped[int] = mapped_column(Integer)
        applied: Mapped[int] = mapped_column(BigInteger, default=now_timestamp)

    _QUOTA_TABLES[base.metadata] = Quota.__table__
    return Quota, QuotaOverride


class QuotaMixin:
    """Count inserts of a model against its quota; ``quota_kind`` names it
    (default: the class name)."""

    quota_kind: str | None = None

    @classmethod
    def quota_record_kind(cls) -> str:
        return cls.quota_kind or cls.__name__


def take_one(connection: Any, table: Table, kind: str) -> None:
    """Count one creation, or raise why it is refused (no change then)."""
    now = now_timestamp()
    taken = connection.execute(
        update(table)
        .where(
            table.c.record_kind == kind,
            table.c.count < table.c.ceiling,
            table.c.window_start <= now,
            table.c.window_expires > now,
        )
        .values(count=table.c.count + 1)
    )
    if taken.rowcount == 1:
        return
    row = connection.execute(
        select(table.c.window_start, table.c.window_expires).where(
            table.c.record_kind == kind
        )
    ).first()
    if row is None or not row.window_start <= now < row.window_expires:
        raise QuotaNotSetOrExpiredError(f"no open quota window for {kind!r}")
    raise QuotaReachedError(f"the quota for {kind!r} has been reached")


@event.listens_for(QuotaMixin, "before_insert", propagate=True)
def _count_insert(mapper, connection, target) -> None:
    table = _QUOTA_TABLES.get(mapper.local_table.metadata)
    if table is None:
        raise QuotaNotSetOrExpiredError("quota_models() was not called for this base")
    take_one(connection, table, type(target).quota_record_kind())

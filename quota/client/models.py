"""Quota enforcement inside a field application's own database.

The field application declares the quota tables on its declarative base and marks
the models to count with ``QuotaMixin``::

    Quota, QuotaOverride = quota_models(db.Model)

    class Visit(QuotaMixin, db.Model):
        quota_kind = "visit"

Every INSERT into a counted model's table -- a session flush, a bulk
``session.execute(insert(Visit), rows)``, ``bulk_insert_mappings`` or a Core
``connection.execute(Visit.__table__.insert(), rows)`` -- first runs one
conditional UPDATE of its quota row in the same transaction: the count goes up by
the number of rows only while it stays within the ceiling and the window is open.
The database serialises those updates, so threads and processes inserting at once
can never pass the ceiling; a rolled-back insert takes its count back with it.
An ``INSERT ... SELECT`` cannot be counted beforehand and is refused.

A ceiling above the one the controller last confirmed holds until its lease ends
(``lease_expires``, Unix time); past it the ceiling falls back to ``confirmed``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    event,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.dml import Insert

from quota.client import clock
from quota.client.codes import shown_time

_QUOTA_TABLES: dict[MetaData, Table] = {}
_KIND_BY_TABLE: dict[tuple[int, str], str | None] = {}
# A device clock this far from the controller's is worth a word to the user.
CLOCK_HINT_SECONDS = 300


class QuotaReachedError(Exception):
    """The record kind's ceiling is reached: no more creations without an override."""


class QuotaNotSetOrExpiredError(Exception):
    """No quota window is open for this record kind."""


class QuotaCountError(Exception):
    """An insert whose rows cannot be counted against the quota beforehand."""


def now_timestamp() -> int:
    return clock.now_timestamp()


def shown_duration(seconds: float) -> str:
    """A duration in the largest unit that keeps it readable."""
    seconds = abs(seconds)
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} seconds"


def clock_hint(offset: int | None, bound: int | None) -> str:
    """What to tell the user when the device clock was off at the last exchange."""
    limit = bound if bound else CLOCK_HINT_SECONDS
    if offset is None or abs(offset) <= limit:
        return ""
    way = "ahead of" if offset > 0 else "behind"
    return (
        f"; at the last exchange this device's clock was {shown_duration(offset)}"
        f" {way} the controller's: check the device clock"
    )


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
        # The ceiling the controller last confirmed, and until when (Unix time,
        # 0: no lease) a higher ``ceiling`` holds.
        confirmed: Mapped[int | None] = mapped_column(Integer, nullable=True)
        lease_expires: Mapped[int] = mapped_column(BigInteger, default=0)
        # This device's clock minus the controller's at the last exchange, and
        # the most the controller allows (seconds).
        clock_offset: Mapped[int | None] = mapped_column(Integer, nullable=True)
        clock_bound: Mapped[int | None] = mapped_column(Integer, nullable=True)
        # A random name of this install, made with the row: a device wiped and
        # installed again has another, so the controller can tell (records the
        # old install made after its last report would otherwise be forgotten).
        install: Mapped[str | None] = mapped_column(String(32), nullable=True)

        @property
        def target(self) -> int:
            return effective_ceiling(
                self.ceiling, self.confirmed, self.lease_expires, now_timestamp()
            )

        @property
        def model_count(self) -> int:
            return self.count

    class QuotaOverride(base):
        """Override requests made on this device (``extra`` 0) and the approval
        codes applied for them: a nonce is accepted once, on this install."""

        __tablename__ = "client_quota_overrides"

        nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
        record_kind: Mapped[str] = mapped_column(String(100))
        extra: Mapped[int] = mapped_column(Integer)
        applied: Mapped[int] = mapped_column(BigInteger, default=now_timestamp)

    _QUOTA_TABLES[base.metadata] = Quota.__table__
    if not event.contains(Engine, "before_execute", _count_inserts):
        event.listen(Engine, "before_execute", _count_inserts)
    return Quota, QuotaOverride


class QuotaMixin:
    """Count inserts of a model against its quota; ``quota_kind`` names it
    (default: the class name)."""

    quota_kind: str | None = None

    @classmethod
    def quota_record_kind(cls) -> str:
        return cls.quota_kind or cls.__name__


def effective_ceiling(
    ceiling: int, confirmed: int | None, lease_expires: int, now: int
) -> int:
    """The ceiling in force at ``now``: the leased one until its lease ends."""
    if confirmed is None or not lease_expires or now < lease_expires:
        return ceiling
    return min(ceiling, confirmed)


def effective_ceiling_column(table: Table, now: int) -> Any:
    """``effective_ceiling`` as SQL over a quota table's row."""
    leased = or_(
        table.c.confirmed.is_(None),
        table.c.lease_expires == 0,
        table.c.lease_expires > now,
    )
    return case(
        (leased, table.c.ceiling),
        (table.c.confirmed < table.c.ceiling, table.c.confirmed),
        else_=table.c.ceiling,
    )


def take(connection: Any, table: Table, kind: str, rows: int = 1) -> None:
    """Count ``rows`` creations at once, or raise why they are refused (no
    change then)."""
    now = now_timestamp()
    taken = connection.execute(
        update(table)
        .where(
            and_(
                table.c.record_kind == kind,
                table.c.count + rows <= effective_ceiling_column(table, now),
                table.c.window_start <= now,
                table.c.window_expires > now,
            )
        )
        .values(count=table.c.count + rows)
    )
    if taken.rowcount == 1:
        return
    row = connection.execute(select(table).where(table.c.record_kind == kind)).first()
    if row is None:
        raise QuotaNotSetOrExpiredError(
            f"no quota window for {kind!r} yet: this device has not heard from"
            " the quota controller; connect it (or check in) once"
        )
    hint = clock_hint(row.clock_offset, row.clock_bound)
    if now < row.window_start:
        raise QuotaNotSetOrExpiredError(
            f"no open quota window for {kind!r}: it opens at"
            f" {shown_time(row.window_start)} and this device's clock says"
            f" {shown_time(now)}{hint or '; if that is wrong, check the device clock'}"
        )
    if now >= row.window_expires:
        raise QuotaNotSetOrExpiredError(
            f"no open quota window for {kind!r}: it closed at"
            f" {shown_time(row.window_expires)} and this device's clock says"
            f" {shown_time(now)}{hint or '; if that is wrong, check the device clock'}"
        )
    ceiling = effective_ceiling(row.ceiling, row.confirmed, row.lease_expires, now)
    lapsed = ceiling < row.ceiling
    left = max(0, ceiling - row.count)
    if rows > 1 and left:
        raise QuotaReachedError(
            f"{rows} {kind!r} records would pass the quota: {left} are left"
        )
    raise QuotaReachedError(
        f"the quota for {kind!r} has been reached ({row.count} of {ceiling})"
        + (
            "; the extra the controller granted lapsed at"
            f" {shown_time(row.lease_expires)}: connect to the controller to renew it"
            if lapsed
            else ""
        )
        + hint
    )


def take_one(connection: Any, table: Table, kind: str) -> None:
    """Count one creation, or raise why it is refused (no change then)."""
    take(connection, table, kind, 1)


def _counted_kind(table: Any) -> str | None:
    """The record kind counted on inserts into ``table`` (None: not counted).

    Tables are told apart by metadata and name: ORM statements carry an
    annotated copy of the table, not the table itself."""
    key = (id(table.metadata), table.fullname)
    if key in _KIND_BY_TABLE:
        return _KIND_BY_TABLE[key]
    kind = None
    pending = list(QuotaMixin.__subclasses__())
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        mapped = getattr(model, "__table__", None)
        if mapped is not None and (id(mapped.metadata), mapped.fullname) == key:
            kind = model.quota_record_kind()
            break
    _KIND_BY_TABLE[key] = kind
    return kind


def _rows_of(statement: Insert, multiparams: Any) -> int:
    if statement.select is not None:
        raise QuotaCountError(
            f"an INSERT ... SELECT into {statement.table.name} cannot be counted"
            " against its quota: insert the rows as a list"
        )
    multi = getattr(statement, "_multi_values", ())
    if multi:
        return sum(len(values) for values in multi)
    return max(1, len(multiparams or ()))


def _count_inserts(connection, clauseelement, multiparams, params, options) -> None:
    """Count every INSERT into a quota-counted table before it runs."""
    if not isinstance(clauseelement, Insert):
        return
    kind = _counted_kind(clauseelement.table)
    if kind is None:
        return
    table = _QUOTA_TABLES.get(clauseelement.table.metadata)
    if table is None:
        raise QuotaNotSetOrExpiredError("quota_models() was not called for this base")
    take(connection, table, kind, _rows_of(clauseelement, multiparams))

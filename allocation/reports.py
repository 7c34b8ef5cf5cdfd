"""Reports over a period: usage per user and account, machine utilisation, burn
rates, and the ledger and usage as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from allocation.ledger import DIGITS, LedgerLine
from allocation.models import (
    FUNCTION_SUM,
    AllocationPeriod,
    Job,
    Machine,
    Project,
    Resource,
    ResourcePool,
    Usage,
)


def period_bounds(period: AllocationPeriod, zone: ZoneInfo) -> tuple[dt.datetime, ...]:
    """Return the period's first and end instants (local midnights) in UTC."""
    return tuple(
        dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC)
        for day in (period.start, period.end)
    )


def period_hours(period: AllocationPeriod, zone: ZoneInfo) -> float:
    """Hours in the period, as clocks in ``zone`` count them (DST included)."""
    begin, end = period_bounds(period, zone)
    return (end - begin).total_seconds() / 3600


def subtree_ids(session: Session, project_id: int) -> list[int]:
    """Return the project and every project below it."""
    children: dict[int | None, list[int]] = {}
    for id_, parent_id in session.execute(select(Project.id, Project.parent_id)):
        children.setdefault(parent_id, []).append(id_)
    found, todo = [], [project_id]
    while todo and len(found) < 100_000:
        current = todo.pop()
        if current in found:
            continue
        found.append(current)
        todo.extend(children.get(current, []))
    return found


@dataclass(frozen=True)
class UsageShare:
    """CPU usage of one user or one account: raw and scaled hours, job runs."""

    name: str
    cpu_hours: float
    charged_hours: float
    jobs: int


def usage_by(
    session: Session,
    project_id: int,
    period: AllocationPeriod,
    zone: ZoneInfo,
    by: str,
    resource_name: str = "cpu",
) -> list[UsageShare]:
    """Return the CPU usage of a project and its sub-projects in ``period``, per
    ``by`` (user or account); a job counts in the period in which it ended."""
    begin, end = period_bounds(period, zone)
    key = Job.username if by == "user" else Job.account
    factor = (
        select(Resource.scaling_factor)
        .where(Resource.machine_id == Job.machine_id, Resource.name == resource_name)
        .limit(1)
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            key,
            func.sum(Job.cpu_hours),
            func.sum(Job.cpu_hours * func.coalesce(factor, 1.0)),
            func.count(Job.id),
        )
        .where(
            Job.project_id.in_(subtree_ids(session, project_id)),
            Job.ended >= begin,
            Job.ended < end,
        )
        .group_by(key)
        .order_by(func.sum(Job.cpu_hours).desc(), key)
    )
    return [
        UsageShare(name or "", round(raw, DIGITS), round(charged, DIGITS), count)
        for name, raw, charged, count in rows
    ]


@dataclass(frozen=True)
class Utilisation:
    """What a machine's resource offered in a period and how much was used."""

    machine: str
    resource: str
    resource_pool: str
    units: str
    function: str
    quantity: float | None
    capacity: float | None
    used: float

    @property
    def percent(self) -> float | None:
        if not self.capacity:
            return None
        return round(100.0 * self.used / self.capacity, 2)


def machine_utilisation(
    session: Session, period: AllocationPeriod, zone: ZoneInfo
) -> list[Utilisation]:
    """Return each resource's capacity over ``period`` and its raw usage.

    A CPU resource's quantity is its CPUs: its capacity is CPUs x hours of the
    period. Any other resource's quantity is its size: usage is the peak day.
    """
    daily = (
        select(
            Usage.resource_id.label("resource_id"),
            Usage.day.label("day"),
            func.sum(Usage.raw_quantity).label("raw"),
            func.sum(Usage.quantity).label("charged"),
        )
        .where(Usage.day >= period.start, Usage.day < period.end)
        .group_by(Usage.resource_id, Usage.day)
        .subquery("daily")
    )
    totals = {
        row.resource_id: (row.total, row.peak, row.peak_charged)
        for row in session.execute(
            select(
                daily.c.resource_id,
                func.sum(daily.c.raw).label("total"),
                func.max(daily.c.raw).label("peak"),
                func.max(daily.c.charged).label("peak_charged"),
            ).group_by(daily.c.resource_id)
        )
    }
    hours = period_hours(period, zone)
    found = []
    rows = session.execute(
        select(Machine.name, Resource, ResourcePool)
        .join(Resource, Resource.machine_id == Machine.id)
        .join(ResourcePool, ResourcePool.id == Resource.resource_pool_id)
        .order_by(Machine.name, Resource.name)
    )
    for machine, resource, pool in rows:
        total, _peak, peak_charged = totals.get(resource.id, (0.0, 0.0, 0.0))
        if pool.function == FUNCTION_SUM:
            used = float(total or 0.0)
            capacity = resource.quantity * hours if resource.quantity else None
        else:
            # Stored usage of disk pools is in the pool's unit, scaled: undo it.
            used = float(peak_charged or 0.0) / resource.scaling_factor
            capacity = resource.quantity
        found.append(
            Utilisation(
                machine,
                resource.name,
                pool.name,
                pool.units,
                pool.function,
                resource.quantity,
                capacity,
                round(used, DIGITS),
            )
        )
    return found


@dataclass(frozen=True)
class BurnRate:
    """How fast a pool is used, and when, at that pace, it runs out."""

    per_day: float | None
    days_elapsed: int
    exhausted_on: dt.date | None
    state: str  # exhausted | projected | lasts | idle | not-started | not-summed


def burn_rate(line: LedgerLine, period: AllocationPeriod, today: dt.date) -> BurnRate:
    """Return ``line``'s mean daily use so far and its projected exhaustion day."""
    if line.function != FUNCTION_SUM:
        return BurnRate(None, 0, None, "not-summed")
    if today < period.start:
        return BurnRate(None, 0, None, "not-started")
    elapsed = (min(today + dt.timedelta(days=1), period.end) - period.start).days
    per_day = line.used / elapsed if elapsed else 0.0
    if line.allocated and line.used >= line.allocated:
        return BurnRate(round(per_day, DIGITS), elapsed, None, "exhausted")
    if per_day <= 0:
        return BurnRate(0.0, elapsed, None, "idle")
    days_left = math.ceil((line.allocated - line.used) / per_day)
    day = period.start + dt.timedelta(days=elapsed - 1 + days_left)
    state = "projected" if day < period.end else "lasts"
    return BurnRate(
        round(per_day, DIGITS), elapsed, day if state == "projected" else None, state
    )


LEDGER_COLUMNS = (
    "period",
    "project",
    "resource_pool",
    "units",
    "function",
    "allocated",
    "used",
    "remaining",
    "used_percent",
    "exceeded",
)
USAGE_COLUMNS = (
    "day",
    "machine",
    "resource",
    "resource_pool",
    "units",
    "project",
    "quantity",
    "raw_quantity",
    "count",
)


def _csv_rows(header: Iterable[str], rows: Iterable[Iterable]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        yield buffer.getvalue()


def ledger_csv(lines: list[LedgerLine]) -> Iterator[str]:
    """Yield the ledger as CSV text, a line at a time."""
    return _csv_rows(
        LEDGER_COLUMNS,
        [
            (
                line.period,
                line.project,
                line.resource_pool,
                line.units,
                line.function,
                line.allocated,
                line.used,
                line.remaining,
                "" if line.used_percent is None else line.used_percent,
                "yes" if line.exceeded else "no",
            )
            for line in lines
        ],
    )


def usage_csv(
    session: Session, period: AllocationPeriod, batch: int = 5000
) -> Iterator[str]:
    """Yield every usage row of ``period`` as CSV, day by day, read from the
    database a batch at a time so a year of usage stays in bounded memory."""
    return _csv_rows(USAGE_COLUMNS, _usage_rows(session, period, batch))


def _usage_rows(session: Session, period: AllocationPeriod, batch: int) -> Iterator:
    statement = (
        select(
            Usage.id,
            Usage.day,
            Machine.name,
            Resource.name,
            ResourcePool.name,
            ResourcePool.units,
            Project.name,
            Usage.quantity,
            Usage.raw_quantity,
            Usage.count,
        )
        .join(Resource, Resource.id == Usage.resource_id)
        .join(Machine, Machine.id == Resource.machine_id)
        .join(ResourcePool, ResourcePool.id == Resource.resource_pool_id)
        .join(Project, Project.id == Usage.project_id)
        .where(Usage.day >= period.start, Usage.day < period.end)
        .order_by(Usage.day, Usage.id)
        .limit(batch)
    )
    after: tuple[dt.date, int] | None = None
    while True:
        page = statement
        if after is not None:
            page = page.where(
                (Usage.day > after[0])
                | ((Usage.day == after[0]) & (Usage.id > after[1]))
            )
        rows = session.execute(page).all()
        for _usage_id, day, *rest in rows:
            yield (day.isoformat(), *rest)
        if len(rows) < batch:
            return
        after = (rows[-1][1], rows[-1][0])

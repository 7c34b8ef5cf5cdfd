"""The ledger of allocation pools: allocated, used, remaining, aggregated in SQL.

Usage rows are first added up per pool and day (several sub-projects or machines
feeding one pool on one day); the pool's function then combines the days: the
total for sum-type pools, the peak for max-type, and the minimum, mean or latest
day for min, avg and last.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.orm import Session

from allocation.models import (
    FUNCTION_AVG,
    FUNCTION_LAST,
    FUNCTION_MAX,
    FUNCTION_MIN,
    Allocation,
    AllocationPeriod,
    AllocationPool,
    Project,
    Resource,
    ResourcePool,
    Usage,
)
from allocation.resolution import allocated_projects_query

# Figures are rounded so that every database reports the same digits: floating
# sums in another order differ in the last bits.
DIGITS = 6


@dataclass(frozen=True)
class LedgerFilter:
    """Which allocation pools to report; None means all."""

    project_ids: Collection[int] | None = None
    period_ids: Collection[int] | None = None
    resource_pool_ids: Collection[int] | None = None
    pool_ids: Collection[int] | None = None


@dataclass(frozen=True)
class LedgerLine:
    """One allocation pool's balance."""

    pool_id: int
    project_id: int
    project: str
    period_id: int
    period: str
    resource_pool_id: int
    resource_pool: str
    units: str
    function: str
    allocated: float
    used: float
    raw_used: float
    days: int

    @property
    def remaining(self) -> float:
        return round(self.allocated - self.used, DIGITS)

    @property
    def used_percent(self) -> float | None:
        if self.allocated == 0:
            return None
        return round(100.0 * self.used / self.allocated, 2)

    @property
    def exceeded(self) -> bool:
        return self.used > self.allocated

    def is_near(self, threshold_percent: float) -> bool:
        """True when at least ``threshold_percent`` is used but not exceeded."""
        percent = self.used_percent
        return (
            not self.exceeded and percent is not None and percent >= threshold_percent
        )


def daily_pool_usage(period_ids: Collection[int] | None = None) -> Select:
    """Select (pool_id, day, total, raw_total): usage charged to each pool per day."""
    resolved = allocated_projects_query(period_ids).subquery("resolved")
    statement = (
        select(
            AllocationPool.id.label("pool_id"),
            Usage.day.label("day"),
            func.sum(Usage.quantity).label("total"),
            func.sum(Usage.raw_quantity).label("raw_total"),
            func.max(Usage.day)
            .over(partition_by=AllocationPool.id)
            .label("latest_day"),
        )
        .select_from(Usage)
        .join(Resource, Resource.id == Usage.resource_id)
        .join(
            AllocationPeriod,
            and_(Usage.day >= AllocationPeriod.start, Usage.day < AllocationPeriod.end),
        )
        .join(
            resolved,
            and_(
                resolved.c.submitted_id == Usage.project_id,
                resolved.c.period_id == AllocationPeriod.id,
                resolved.c.resource_pool_id == Resource.resource_pool_id,
            ),
        )
        .join(
            AllocationPool,
            and_(
                AllocationPool.project_id == resolved.c.allocated_id,
                AllocationPool.period_id == AllocationPeriod.id,
                AllocationPool.resource_pool_id == Resource.resource_pool_id,
            ),
        )
        .group_by(AllocationPool.id, Usage.day)
    )
    if period_ids is not None:
        statement = statement.where(AllocationPeriod.id.in_(period_ids))
    return statement


def combined(function_column, daily):
    """Return (used, raw_used, days) columns combining ``daily`` rows by function."""

    def by_function(column_name: str):
        column = daily.c[column_name]
        return case(
            (function_column == FUNCTION_MAX, func.max(column)),
            (function_column == FUNCTION_MIN, func.min(column)),
            (function_column == FUNCTION_AVG, func.avg(column)),
            (
                function_column == FUNCTION_LAST,
                func.max(case((daily.c.day == daily.c.latest_day, column))),
            ),
            else_=func.sum(column),
        )

    return by_function("total"), by_function("raw_total"), func.count(daily.c.day)


def ledger(session: Session, which: LedgerFilter | None = None) -> list[LedgerLine]:
    """Return the balance of every allocation pool matching ``which``."""
    which = which or LedgerFilter()
    daily = daily_pool_usage(which.period_ids).subquery("daily")
    used, raw_used, days = combined(ResourcePool.function, daily)
    usage = (
        select(
            daily.c.pool_id,
            used.label("used"),
            raw_used.label("raw_used"),
            days.label("days"),
        )
        .select_from(daily)
        .join(AllocationPool, AllocationPool.id == daily.c.pool_id)
        .join(ResourcePool, ResourcePool.id == AllocationPool.resource_pool_id)
        .group_by(daily.c.pool_id, ResourcePool.function)
        .subquery("usage")
    )
    allocated = (
        select(
            Allocation.allocation_pool_id.label("pool_id"),
            func.sum(Allocation.quantity).label("allocated"),
        )
        .group_by(Allocation.allocation_pool_id)
        .subquery("allocated")
    )
    statement = (
        select(
            AllocationPool.id,
            Project.id.label("project_id"),
            Project.name.label("project"),
            AllocationPeriod.id.label("period_id"),
            AllocationPeriod.name.label("period"),
            ResourcePool.id.label("resource_pool_id"),
            ResourcePool.name.label("resource_pool"),
            ResourcePool.units,
            ResourcePool.function,
            func.coalesce(allocated.c.allocated, 0.0).label("allocated"),
            func.coalesce(usage.c.used, 0.0).label("used"),
            func.coalesce(usage.c.raw_used, 0.0).label("raw_used"),
            func.coalesce(usage.c.days, 0).label("days"),
        )
        .join(Project, Project.id == AllocationPool.project_id)
        .join(AllocationPeriod, AllocationPeriod.id == AllocationPool.period_id)
        .join(ResourcePool, ResourcePool.id == AllocationPool.resource_pool_id)
        .outerjoin(allocated, allocated.c.pool_id == AllocationPool.id)
        .outerjoin(usage, usage.c.pool_id == AllocationPool.id)
        .order_by(
            AllocationPeriod.end.desc(),
            Project.name,
            ResourcePool.name,
            AllocationPool.id,
        )
    )
    filters = (
        (AllocationPool.project_id, which.project_ids),
        (AllocationPool.period_id, which.period_ids),
        (AllocationPool.resource_pool_id, which.resource_pool_ids),
        (AllocationPool.id, which.pool_ids),
    )
    for column, wanted in filters:
        if wanted is not None:
            statement = statement.where(column.in_(wanted))
    return [
        LedgerLine(
            pool_id=row.id,
            project_id=row.project_id,
            project=row.project,
            period_id=row.period_id,
            period=row.period,
            resource_pool_id=row.resource_pool_id,
            resource_pool=row.resource_pool,
            units=row.units,
            function=row.function,
            allocated=round(float(row.allocated), DIGITS),
            used=round(float(row.used), DIGITS),
            raw_used=round(float(row.raw_used), DIGITS),
            days=int(row.days),
        )
        for row in session.execute(statement)
    ]


def pool_usage_by_day(
    session: Session, pool: AllocationPool
) -> list[tuple[dt.date, float]]:
    """Return (day, usage charged to ``pool``) for each day with usage, in order."""
    daily = daily_pool_usage([pool.period_id]).subquery("daily")
    rows = session.execute(
        select(daily.c.day, daily.c.total)
        .where(daily.c.pool_id == pool.id)
        .order_by(daily.c.day)
    )
    return [(row.day, round(float(row.total), DIGITS)) for row in rows]


def submitted_usage(
    session: Session, period: AllocationPeriod
) -> dict[tuple[int, int], float]:
    """Return {(project_id, resource_pool_id): used} for usage each project submitted
    during ``period``, combined by each resource pool's function."""
    daily = (
        select(
            Usage.project_id.label("project_id"),
            Resource.resource_pool_id.label("resource_pool_id"),
            Usage.day.label("day"),
            func.sum(Usage.quantity).label("total"),
            func.sum(Usage.raw_quantity).label("raw_total"),
            func.max(Usage.day)
            .over(partition_by=(Usage.project_id, Resource.resource_pool_id))
            .label("latest_day"),
        )
        .join(Resource, Resource.id == Usage.resource_id)
        .where(Usage.day >= period.start, Usage.day < period.end)
        .group_by(Usage.project_id, Resource.resource_pool_id, Usage.day)
        .subquery("daily")
    )
    used, _raw_used, _days = combined(ResourcePool.function, daily)
    rows = session.execute(
        select(daily.c.project_id, daily.c.resource_pool_id, used.label("used"))
        .join(ResourcePool, ResourcePool.id == daily.c.resource_pool_id)
        .group_by(daily.c.project_id, daily.c.resource_pool_id, ResourcePool.function)
    )
    return {
        (row.project_id, row.resource_pool_id): round(float(row.used), DIGITS)
        for row in rows
    }

"""The ledger: every pool function, shared sub-projects, the same on every database."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from allocation.ledger import LedgerFilter, ledger
from allocation.models import (
    MODE_SHARED,
    Allocation,
    AllocationPeriod,
    AllocationPool,
    Grant,
    Machine,
    Project,
    Resource,
    ResourcePool,
    Scheme,
    Usage,
)
from tracker.extensions import db

START = date(2100, 1, 1)
FUNCTIONS = ("sum", "max", "min", "avg", "last")


def build(seed: int = 3) -> dict:
    """A parent with a pool per function, a shared child without pools, noisy usage."""
    rng = random.Random(seed)
    session = db.session
    machine = Machine(name="m")
    parent = Project(name="parent", allocation_mode=MODE_SHARED)
    child = Project(name="child", parent=parent, allocation_mode=MODE_SHARED)
    period = AllocationPeriod(name="P", start=START, end=START + timedelta(days=30))
    scheme = Scheme(name="S", opened=START)
    session.add_all([machine, parent, child, period, scheme])
    session.flush()
    grant = Grant(
        project_id=parent.id,
        scheme_id=scheme.id,
        date=START,
        begins=START,
        expires=START,
    )
    session.add(grant)
    expected = {}
    for function in FUNCTIONS:
        pool = ResourcePool(name=function, units="u", function=function)
        resource = Resource(machine=machine, resource_pool=pool, name=function)
        session.add_all([pool, resource])
        session.flush()
        allocation_pool = AllocationPool(
            project_id=parent.id, period_id=period.id, resource_pool_id=pool.id
        )
        session.add(allocation_pool)
        session.flush()
        session.add(
            Allocation(
                grant_id=grant.id,
                allocation_pool_id=allocation_pool.id,
                project_id=parent.id,
                quantity=100.0,
            )
        )
        daily: dict[date, float] = {}
        for offset in range(40):  # the last 10 days fall outside the period
            day = START + timedelta(days=offset)
            for project in (parent, child):
                if rng.random() < 0.3:
                    continue
                value = rng.random() * 10 / 3  # inexact in binary
                session.add(
                    Usage(
                        resource_id=resource.id,
                        project_id=project.id,
                        day=day,
                        quantity=value,
                        raw_quantity=value,
                        count=1,
                    )
                )
                if offset < 30:
                    daily[day] = daily.get(day, 0.0) + value
        totals = [daily[day] for day in sorted(daily)]
        expected[allocation_pool.id] = {
            "sum": sum(totals),
            "max": max(totals),
            "min": min(totals),
            "avg": sum(totals) / len(totals),
            "last": totals[-1],
        }[function]
    session.commit()
    return expected


def test_each_function_combines_the_daily_totals_of_the_pool(app):
    with app.app_context():
        expected = build()
        lines = ledger(db.session)
    assert len(lines) == len(FUNCTIONS)
    for line in lines:
        assert line.used == pytest.approx(expected[line.pool_id], abs=1e-6)
        assert line.allocated == 100.0
        assert 0 < line.days <= 30  # days after the period do not count


# Figures from a SQLite run; the same test on PostgreSQL must give them exactly.
def test_ledger_results_are_identical_on_sqlite_and_postgresql(app):
    with app.app_context():
        build(seed=11)
        lines = ledger(db.session, LedgerFilter())
    figures = [
        (
            line.resource_pool,
            line.used,
            line.remaining,
            line.used_percent,
            line.exceeded,
        )
        for line in lines
    ]
    assert figures == GOLDEN


GOLDEN = [
    ("avg", 3.020356, 96.979644, 3.02, False),
    ("last", 4.527102, 95.472898, 4.53, False),
    ("max", 5.620858, 94.379142, 5.62, False),
    ("min", 0.213523, 99.786477, 0.21, False),
    ("sum", 57.478539, 42.521461, 57.48, False),
]

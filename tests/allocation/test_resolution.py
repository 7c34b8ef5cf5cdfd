"""The allocated-project rule on a tree of private and shared projects."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from allocation.models import (
    MODE_PRIVATE,
    MODE_SHARED,
    AllocationPeriod,
    AllocationPool,
    Project,
    ResourcePool,
)
from allocation.resolution import (
    ProjectCycle,
    allocated_project_for,
    allocated_projects_query,
    resolve_allocated_project,
)
from tracker.extensions import db

# name: (parent, mode, pooled for CPU)
TREE = {
    "uni": (None, MODE_SHARED, True),
    "faculty": ("uni", MODE_SHARED, False),
    "lab": ("faculty", MODE_SHARED, False),
    "lab-student": ("lab", MODE_SHARED, False),
    "group": ("faculty", MODE_SHARED, True),
    "group-sub": ("group", MODE_SHARED, False),
    "secretive": ("faculty", MODE_PRIVATE, False),
    "secretive-sub": ("secretive", MODE_SHARED, False),
    "orphan": (None, MODE_SHARED, False),
    "private-with-pool": ("group", MODE_PRIVATE, True),
}
EXPECTED_CPU = {
    "uni": "uni",  # has a pool
    "faculty": "uni",  # shared, no pool: up to uni
    "lab": "uni",  # two levels up
    "lab-student": "uni",  # three levels up
    "group": "group",  # has its own pool
    "group-sub": "group",  # stops at the nearest pool
    "secretive": "secretive",  # private: charged itself, pool or not
    "secretive-sub": "secretive",  # shared: stops at its private parent
    "orphan": "orphan",  # no parent
    "private-with-pool": "private-with-pool",
}
# For disk nobody has a pool: shared projects go up to their root or a private one.
EXPECTED_DISK = {
    "uni": "uni",
    "faculty": "uni",
    "lab": "uni",
    "lab-student": "uni",
    "group": "uni",
    "group-sub": "uni",
    "secretive": "secretive",
    "secretive-sub": "secretive",
    "orphan": "orphan",
    "private-with-pool": "private-with-pool",
}


def build_tree() -> dict[str, int]:
    session = db.session
    cpu = ResourcePool(name="CPU", units="CPU hours", function="sum")
    disk = ResourcePool(name="Disk", units="GB", function="max")
    period = AllocationPeriod(name="2100", start=date(2100, 1, 1), end=date(2101, 1, 1))
    other = AllocationPeriod(name="2101", start=date(2101, 1, 1), end=date(2102, 1, 1))
    session.add_all([cpu, disk, period, other])
    projects: dict[str, Project] = {}
    for name, (parent, mode, _pooled) in TREE.items():
        projects[name] = Project(
            name=name, parent=projects.get(parent), allocation_mode=mode
        )
        session.add(projects[name])
    session.flush()
    for name, (_parent, _mode, pooled) in TREE.items():
        if pooled:
            session.add(
                AllocationPool(
                    project_id=projects[name].id,
                    period_id=period.id,
                    resource_pool_id=cpu.id,
                )
            )
    # A pool in another period must not affect 2100.
    session.add(
        AllocationPool(
            project_id=projects["lab"].id, period_id=other.id, resource_pool_id=cpu.id
        )
    )
    session.commit()
    return {
        "cpu": cpu.id,
        "disk": disk.id,
        "period": period.id,
        "other": other.id,
        **{name: project.id for name, project in projects.items()},
    }


def test_allocated_project_for_walks_up_shared_projects_only(app):
    with app.app_context():
        ids = build_tree()
        names = {ids[name]: name for name in TREE}
        for pool, expected in (("cpu", EXPECTED_CPU), ("disk", EXPECTED_DISK)):
            for name, charged in expected.items():
                found = allocated_project_for(
                    db.session, ids[name], ids["period"], ids[pool]
                )
                assert names[found] == charged, (pool, name)
        # In 2101 the lab has its own pool, so the lab's student stops there.
        assert (
            names[
                allocated_project_for(
                    db.session, ids["lab-student"], ids["other"], ids["cpu"]
                )
            ]
            == "lab"
        )


def test_the_recursive_query_agrees_with_the_walk(app):
    with app.app_context():
        ids = build_tree()
        names = {ids[name]: name for name in TREE}
        rows = db.session.execute(allocated_projects_query([ids["period"]])).all()
    resolved = {
        names[row.submitted_id]: names[row.allocated_id]
        for row in rows
        if row.resource_pool_id == ids["cpu"]
    }
    assert resolved == EXPECTED_CPU
    # Only (period, resource pool) pairs with some allocation pool are resolved.
    assert {row.resource_pool_id for row in rows} == {ids["cpu"]}
    assert {row.period_id for row in rows} == {ids["period"]}


def test_a_cycle_of_parents_is_reported_not_looped_forever():
    parents = {1: 2, 2: 1}
    with pytest.raises(ProjectCycle):
        resolve_allocated_project(1, parents, private=set(), pooled=set())


def test_resolution_is_a_plain_function_of_the_tree():
    parents = {1: None, 2: 1, 3: 2}
    assert resolve_allocated_project(3, parents, private=set(), pooled=set()) == 1
    assert resolve_allocated_project(3, parents, private={2}, pooled=set()) == 2
    assert resolve_allocated_project(3, parents, private=set(), pooled={3}) == 3


def test_project_names_are_unique_in_the_database(app):
    from sqlalchemy.exc import IntegrityError

    with app.app_context():
        db.session.add_all([Project(name="same"), Project(name="same")])
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
        assert db.session.scalars(select(Project)).all() == []

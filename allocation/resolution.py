"""Which project is charged for usage: KEP 5's allocated-project rule.

Start at the submitting project. Charge it if it has an allocation pool for the
period and resource pool, or is private, or has no parent; otherwise move to its
parent and repeat.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sqlalchemy import (
    Select,
    and_,
    case,
    exists,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session, aliased

from allocation.models import MODE_PRIVATE, AllocationPool, Project

# A tree deeper than this is a cycle someone slipped in; stop walking there.
MAX_DEPTH = 64


class ProjectCycle(Exception):
    """The parent links of a project lead back to itself."""


def resolve_allocated_project(
    project_id: int,
    parents: Mapping[int, int | None],
    private: Collection[int],
    pooled: Collection[int],
) -> int:
    """Walk up from ``project_id`` to the project that is charged.

    ``parents`` maps project to parent, ``private`` holds the private projects and
    ``pooled`` the projects with an allocation pool for the period and pool.
    """
    current = project_id
    for _ in range(MAX_DEPTH):
        parent = parents.get(current)
        if current in pooled or current in private or parent is None:
            return current
        current = parent
    raise ProjectCycle(f"project {project_id} is inside a cycle of parents")


def allocated_project_for(
    session: Session, project_id: int, period_id: int, resource_pool_id: int
) -> int:
    """Return the id of the project charged for ``project_id``'s usage."""
    rows = session.execute(
        select(Project.id, Project.parent_id, Project.allocation_mode)
    )
    parents: dict[int, int | None] = {}
    private: set[int] = set()
    for row in rows:
        parents[row.id] = row.parent_id
        if row.allocation_mode == MODE_PRIVATE:
            private.add(row.id)
    pooled = set(
        session.scalars(
            select(AllocationPool.project_id).where(
                AllocationPool.period_id == period_id,
                AllocationPool.resource_pool_id == resource_pool_id,
            )
        )
    )
    return resolve_allocated_project(project_id, parents, private, pooled)


def _stops_at(project, period_id, resource_pool_id):
    has_pool = exists().where(
        AllocationPool.project_id == project.id,
        AllocationPool.period_id == period_id,
        AllocationPool.resource_pool_id == resource_pool_id,
    )
    return case(
        (
            or_(
                has_pool,
                project.allocation_mode == MODE_PRIVATE,
                project.parent_id.is_(None),
            ),
            1,
        ),
        else_=0,
    )


def allocated_projects_query(period_ids: Collection[int] | None = None) -> Select:
    """Select (submitted_id, period_id, resource_pool_id, allocated_id) for every
    project and every (period, resource pool) that has an allocation pool.

    A recursive query: the walk up the tree happens in the database.
    """
    pairs = select(AllocationPool.period_id, AllocationPool.resource_pool_id).distinct()
    if period_ids is not None:
        pairs = pairs.where(AllocationPool.period_id.in_(period_ids))
    pairs = pairs.subquery("pairs")
    start = aliased(Project, name="start_project")
    anchor = (
        select(
            start.id.label("submitted_id"),
            start.id.label("current_id"),
            pairs.c.period_id,
            pairs.c.resource_pool_id,
            literal(0).label("depth"),
            _stops_at(start, pairs.c.period_id, pairs.c.resource_pool_id).label(
                "stopped"
            ),
        )
        .select_from(start)
        .join(pairs, true())
    )
    walk = anchor.cte("walk", recursive=True)
    current = aliased(Project, name="current_project")
    parent = aliased(Project, name="parent_project")
    step = (
        select(
            walk.c.submitted_id,
            parent.id,
            walk.c.period_id,
            walk.c.resource_pool_id,
            walk.c.depth + 1,
            _stops_at(parent, walk.c.period_id, walk.c.resource_pool_id),
        )
        .select_from(walk)
        .join(current, current.id == walk.c.current_id)
        .join(parent, parent.id == current.parent_id)
        .where(and_(walk.c.stopped == 0, walk.c.depth < MAX_DEPTH))
    )
    walk = walk.union_all(step)
    return select(
        walk.c.submitted_id,
        walk.c.period_id,
        walk.c.resource_pool_id,
        walk.c.current_id.label("allocated_id"),
    ).where(walk.c.stopped == 1)

"""The project tree with what each project is allocated and uses in a period."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from allocation.ledger import LedgerFilter, LedgerLine, ledger, submitted_usage
from allocation.models import AllocationPeriod, Project, ResourcePool
from allocation.resolution import resolve_allocated_project


@dataclass
class TreeNode:
    """A project, its ledger lines, its own usage and its children."""

    id: int
    name: str
    allocation_mode: str
    lines: list[LedgerLine] = field(default_factory=list)
    submitted: dict[str, float] = field(default_factory=dict)
    charged_to: dict[str, str] = field(default_factory=dict)
    children: list[TreeNode] = field(default_factory=list)


def project_tree(session: Session, period: AllocationPeriod) -> list[TreeNode]:
    """Return the root projects, each with its descendants, for ``period``."""
    projects = session.execute(
        select(
            Project.id, Project.name, Project.parent_id, Project.allocation_mode
        ).order_by(Project.name)
    ).all()
    pools = {
        row.id: row.name
        for row in session.execute(select(ResourcePool.id, ResourcePool.name))
    }
    nodes = {
        row.id: TreeNode(row.id, row.name, row.allocation_mode) for row in projects
    }
    for line in ledger(session, LedgerFilter(period_ids=[period.id])):
        nodes[line.project_id].lines.append(line)
    parents = {row.id: row.parent_id for row in projects}
    private = {row.id for row in projects if row.allocation_mode == "private"}
    pooled: dict[int, set[int]] = {}
    for node in nodes.values():
        for line in node.lines:
            pooled.setdefault(line.resource_pool_id, set()).add(node.id)
    for (project_id, pool_id), used in submitted_usage(session, period).items():
        node = nodes[project_id]
        node.submitted[pools[pool_id]] = used
        charged = resolve_allocated_project(
            project_id, parents, private, pooled.get(pool_id, set())
        )
        # Usage charged to a project without a pool shows in no ledger.
        in_a_pool = charged in pooled.get(pool_id, set())
        node.charged_to[pools[pool_id]] = nodes[charged].name if in_a_pool else ""
    roots = []
    for row in projects:
        if row.parent_id is None or row.parent_id not in nodes:
            roots.append(nodes[row.id])
        else:
            nodes[row.parent_id].children.append(nodes[row.id])
    return roots

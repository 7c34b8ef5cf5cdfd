"""What the scheduler should enforce: each account's remaining CPU time as
Slurm ``GrpTRESMins``, printed as ``sacctmgr`` commands for an admin to run."""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from allocation.accounts import accounts_of_projects
from allocation.ledger import LedgerFilter, ledger
from allocation.models import FUNCTION_SUM, AllocationPeriod, Machine, Resource
from allocation.units import CPU_HOURS


@dataclass(frozen=True)
class AccountLimit:
    """One account's limit on one cluster, in CPU minutes."""

    account: str
    cluster: str
    cpu_minutes: int
    project: str
    resource_pool: str

    def command(self) -> str:
        """Return the sacctmgr command that sets this limit."""
        return shlex.join(
            [
                "sacctmgr",
                "--immediate",
                "modify",
                "account",
                "where",
                f"name={self.account}",
                f"cluster={self.cluster}",
                "set",
                f"GrpTRESMins=cpu={self.cpu_minutes}",
            ]
        )


def slurm_limits(session: Session, period: AllocationPeriod) -> list[AccountLimit]:
    """Return the GrpTRESMins each project account should have on each cluster.

    For every CPU-hours pool of ``period``: what remains (never below zero),
    turned back into raw CPU minutes on each machine that feeds the pool (the
    machine's scaling factor undone), for each account that charges the project.
    """
    accounts = accounts_of_projects(session)
    feeds: dict[int, list[tuple[str, float]]] = {}
    for pool_id, machine, factor in session.execute(
        select(Resource.resource_pool_id, Machine.name, Resource.scaling_factor)
        .join(Machine, Machine.id == Resource.machine_id)
        .order_by(Machine.name)
    ):
        feeds.setdefault(pool_id, []).append((machine, factor))
    limits = []
    for line in ledger(session, LedgerFilter(period_ids=[period.id])):
        if line.function != FUNCTION_SUM or line.units != CPU_HOURS:
            continue
        remaining = max(line.remaining, 0.0)
        for machine, factor in feeds.get(line.resource_pool_id, []):
            minutes = math.floor(remaining / factor * 60 + 1e-9)
            for account in accounts.get(line.project_id, []):
                limits.append(
                    AccountLimit(
                        account, machine, minutes, line.project, line.resource_pool
                    )
                )
    return limits

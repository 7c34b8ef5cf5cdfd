"""KEP 5's fictional site, built as the "Example" section describes it."""

from __future__ import annotations

from datetime import date

from allocation.models import (
    MODE_PRIVATE,
    Allocation,
    AllocationPeriod,
    AllocationPool,
    Grant,
    Machine,
    Project,
    Resource,
    ResourcePool,
    Scheme,
)
from tracker.extensions import db

YEAR_START, YEAR_END = date(2100, 1, 1), date(2100, 12, 31)


def build_kep_site() -> dict[str, int]:
    """Add KEP 5's machines, projects, pools, grants and allocations; return ids."""
    session = db.session
    brecca, tango = Machine(name="brecca"), Machine(name="tango")
    disk = ResourcePool(name="Disk Space", units="KB", function="max")
    cpu = ResourcePool(name="CPU Hours", units="CPU-hours", function="sum")
    session.add_all([brecca, tango, disk, cpu])
    for machine in (brecca, tango):
        # Snapshots report bytes; the pool counts kilobytes and converts them.
        session.add(Resource(machine=machine, resource_pool=disk, name="disk"))
        session.add(Resource(machine=machine, resource_pool=cpu, name="cpu"))

    projects: dict[str, Project] = {}
    # KEP 5 names InstituteC as ProjectC's parent without defining it.
    for name, parent in [
        ("InstituteA", None),
        ("InstituteB", None),
        ("InstituteC", None),
        ("ProjectA", "InstituteA"),
        ("ProjectB", "InstituteA"),
        ("ProjectC", "InstituteC"),
        ("ProjectD", "ProjectC"),
    ]:
        projects[name] = Project(
            name=name, parent=projects.get(parent), allocation_mode=MODE_PRIVATE
        )
        session.add(projects[name])

    et = Scheme(name="ET", opened=YEAR_START)
    elliott = Scheme(name="Elliott", opened=YEAR_START)
    session.add_all([et, elliott])
    session.flush()

    def grant(project: str, scheme: Scheme) -> Grant:
        row = Grant(
            project_id=projects[project].id,
            scheme_id=scheme.id,
            description=f"{scheme.name} for {project}",
            date=YEAR_START,
            begins=YEAR_START,
            expires=YEAR_END,
        )
        session.add(row)
        return row

    grants = [grant("ProjectA", et), grant("ProjectD", et)]
    # The KEP's end date 2100-03-31 is inclusive; our periods are half-open.
    quarter = AllocationPeriod(name="2100Q1", start=YEAR_START, end=date(2100, 4, 1))
    session.add(quarter)
    session.flush()
    q1pa = AllocationPool(
        project_id=projects["ProjectA"].id,
        period_id=quarter.id,
        resource_pool_id=disk.id,
    )
    q1pd = AllocationPool(
        project_id=projects["ProjectD"].id,
        period_id=quarter.id,
        resource_pool_id=cpu.id,
    )
    session.add_all([q1pa, q1pd])
    session.flush()

    def allocate(grant_row: Grant, pool: AllocationPool, quantity: float) -> None:
        session.add(
            Allocation(
                grant_id=grant_row.id,
                allocation_pool_id=pool.id,
                project_id=pool.project_id,
                quantity=quantity,
            )
        )

    allocate(grants[0], q1pa, 100)
    allocate(grants[1], q1pd, 10)
    # Elliott matches ET's grants with grants of its own.
    grants += [grant("ProjectA", elliott), grant("ProjectD", elliott)]
    session.flush()
    allocate(grants[2], q1pa, 500)
    allocate(grants[3], q1pd, 50)
    session.commit()
    return {
        "q1pa": q1pa.id,
        "q1pd": q1pd.id,
        "period": quarter.id,
        "disk": disk.id,
        "cpu": cpu.id,
        **{name: project.id for name, project in projects.items()},
    }


SACCT_HEADER = "JobID|Cluster|Account|User|Partition|Start|End|Elapsed|AllocCPUS|State"


def eight_days_of_cpu() -> list[str]:
    """ProjectD's jobs: nothing on day 1, then 100 CPU hours a day for 7 days."""
    lines = [SACCT_HEADER]
    # Day 1: a job that ran for no time at all charges 0 hours.
    lines.append(
        "1000|brecca|ProjectD|elliott|main|2100-01-01T09:00:00|2100-01-01T09:00:00"
        "|00:00:00|4|COMPLETED"
    )
    for day in range(2, 9):
        stamp = f"2100-01-{day:02d}"
        lines.append(
            f"{1000 + day}|brecca|ProjectD|elliott|main|{stamp}T08:00:00"
            f"|{stamp}T18:00:00|10:00:00|10|COMPLETED"
        )
        lines.append(
            f"{1000 + day}.batch|brecca|ProjectD|elliott|main|{stamp}T08:00:00"
            f"|{stamp}T18:00:00|10:00:00|10|COMPLETED"
        )
    return lines


def eight_days_of_disk() -> list[str]:
    """ProjectA's disk: 0 bytes on day 1, then 100 KB on each of 7 days."""
    lines = ["Project|Machine|Bytes|Time"]
    lines.append("ProjectA|brecca|0|2100-01-01T06:00:00")
    lines += [
        f"ProjectA|brecca|100000|2100-01-{day:02d}T06:00:00" for day in range(2, 9)
    ]
    return lines

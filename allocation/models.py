"""Projects, grants, resource pools, allocation pools, usage and their change log."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker.db_types import UTCDateTime
from tracker.extensions import db

MODE_PRIVATE = "private"
MODE_SHARED = "shared"
ALLOCATION_MODES = (MODE_PRIVATE, MODE_SHARED)

FUNCTION_SUM = "sum"
FUNCTION_MAX = "max"
FUNCTION_MIN = "min"
FUNCTION_AVG = "avg"
FUNCTION_LAST = "last"
POOL_FUNCTIONS = (FUNCTION_SUM, FUNCTION_MAX, FUNCTION_MIN, FUNCTION_AVG, FUNCTION_LAST)

NAME_LENGTH = 100
DESCRIPTION_LENGTH = 255


class Project(db.Model):
    """A node of the project tree; ``name`` is the Slurm account it charges."""

    __tablename__ = "allocation_projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    description: Mapped[str] = mapped_column(String(DESCRIPTION_LENGTH), default="")
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("allocation_projects.id", ondelete="RESTRICT"), index=True
    )
    allocation_mode: Mapped[str] = mapped_column(String(16), default=MODE_PRIVATE)
    start_date: Mapped[dt.date | None] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)

    parent: Mapped[Project | None] = relationship(remote_side=[id])

    __table_args__ = (
        CheckConstraint(
            "allocation_mode IN ('private', 'shared')", name="allocation_mode"
        ),
        CheckConstraint(
            "start_date IS NULL OR end_date IS NULL OR start_date <= end_date",
            name="dates_in_order",
        ),
    )


class Scheme(db.Model):
    """A source of grants, open over a span of dates."""

    __tablename__ = "allocation_schemes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    description: Mapped[str] = mapped_column(String(DESCRIPTION_LENGTH), default="")
    opened: Mapped[dt.date] = mapped_column(Date)
    closed: Mapped[dt.date | None] = mapped_column(Date)


class Grant(db.Model):
    """An allowance from a scheme to a project; allocations say what it buys."""

    __tablename__ = "allocation_grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("allocation_projects.id", ondelete="RESTRICT"), index=True
    )
    scheme_id: Mapped[int] = mapped_column(
        ForeignKey("allocation_schemes.id", ondelete="RESTRICT"), index=True
    )
    description: Mapped[str] = mapped_column(String(DESCRIPTION_LENGTH), default="")
    date: Mapped[dt.date] = mapped_column(Date)
    begins: Mapped[dt.date] = mapped_column(Date)
    expires: Mapped[dt.date] = mapped_column(Date)

    __table_args__ = (
        # Target of Allocation's composite key: the grant's project, enforced.
        UniqueConstraint("id", "project_id"),
        CheckConstraint("begins <= expires", name="begins_before_expires"),
    )


class ResourcePool(db.Model):
    """What is tracked (CPU hours, disk space) and how usage rows combine."""

    __tablename__ = "allocation_resource_pools"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    units: Mapped[str] = mapped_column(String(40))
    function: Mapped[str] = mapped_column(String(8), default=FUNCTION_SUM)

    __table_args__ = (
        CheckConstraint(
            "function IN ('sum', 'max', 'min', 'avg', 'last')", name="function"
        ),
    )


class Machine(db.Model):
    """A cluster or file server; ``name`` is Slurm's cluster name."""

    __tablename__ = "allocation_machines"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    description: Mapped[str] = mapped_column(String(DESCRIPTION_LENGTH), default="")
    # The registry's instance that is this machine, if an admin linked them.
    instance_id: Mapped[int | None] = mapped_column(
        ForeignKey("instances.id", ondelete="SET NULL"), index=True
    )


class Resource(db.Model):
    """How one machine feeds a resource pool: raw usage times the scaling factor."""

    __tablename__ = "allocation_resources"

    id: Mapped[int] = mapped_column(primary_key=True)
    machine_id: Mapped[int] = mapped_column(
        ForeignKey("allocation_machines.id", ondelete="RESTRICT")
    )
    resource_pool_id: Mapped[int] = mapped_column(
        ForeignKey("allocation_resource_pools.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    scaling_factor: Mapped[float] = mapped_column(Float, default=1.0)
    quantity: Mapped[float | None] = mapped_column(Float)

    machine: Mapped[Machine] = relationship()
    resource_pool: Mapped[ResourcePool] = relationship()

    __table_args__ = (
        UniqueConstraint("machine_id", "resource_pool_id", "name"),
        CheckConstraint("scaling_factor > 0", name="scaling_factor_positive"),
    )


class AllocationPeriod(db.Model):
    """A span of dates, half-open: ``start`` is in it, ``end`` is not."""

    __tablename__ = "allocation_periods"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    start: Mapped[dt.date] = mapped_column(Date)
    end: Mapped[dt.date] = mapped_column(Date)

    __table_args__ = (CheckConstraint('start < "end"', name="start_before_end"),)


class AllocationPool(db.Model):
    """The ledger of one project for one period and one resource pool."""

    __tablename__ = "allocation_pools"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("allocation_projects.id", ondelete="RESTRICT")
    )
    period_id: Mapped[int] = mapped_column(
        ForeignKey("allocation_periods.id", ondelete="RESTRICT"), index=True
    )
    resource_pool_id: Mapped[int] = mapped_column(
        ForeignKey("allocation_resource_pools.id", ondelete="RESTRICT"), index=True
    )

    project: Mapped[Project] = relationship()
    period: Mapped[AllocationPeriod] = relationship()
    resource_pool: Mapped[ResourcePool] = relationship()

    __table_args__ = (
        UniqueConstraint("project_id", "period_id", "resource_pool_id"),
        UniqueConstraint("id", "project_id"),
    )


class Allocation(db.Model):
    """A quantity a grant adds to an allocation pool of the grant's own project."""

    __tablename__ = "allocation_allocations"

    id: Mapped[int] = mapped_column(primary_key=True)
    grant_id: Mapped[int] = mapped_column(index=True)
    allocation_pool_id: Mapped[int] = mapped_column(index=True)
    # Repeated here so two composite foreign keys make the database itself
    # refuse an allocation whose grant belongs to another project than its pool.
    project_id: Mapped[int] = mapped_column(
        ForeignKey("allocation_projects.id", ondelete="RESTRICT")
    )
    quantity: Mapped[float] = mapped_column(Float)
    description: Mapped[str] = mapped_column(String(DESCRIPTION_LENGTH), default="")

    __table_args__ = (
        ForeignKeyConstraint(
            ["grant_id", "project_id"],
            ["allocation_grants.id", "allocation_grants.project_id"],
            name="fk_allocation_allocations_grant_project",
            ondelete="RESTRICT",
        ),
        ForeignKeyConstraint(
            ["allocation_pool_id", "project_id"],
            ["allocation_pools.id", "allocation_pools.project_id"],
            name="fk_allocation_allocations_pool_project",
            ondelete="RESTRICT",
        ),
    )


class AccountMap(db.Model):
    """A Slurm account whose usage goes to a project of another name.

    ``account`` is kept lower-case: Slurm stores accounts lower-case, and an
    account matches a project's name case-insensitively when no map names it.
    """

    __tablename__ = "allocation_account_maps"

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("allocation_projects.id", ondelete="RESTRICT"), index=True
    )


class Job(db.Model):
    """One finished run of a Slurm job, kept so that importing it again changes
    nothing; a requeued job has one row per run, told apart by their start."""

    __tablename__ = "allocation_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    machine_id: Mapped[int] = mapped_column(
        ForeignKey("allocation_machines.id", ondelete="RESTRICT")
    )
    job_id: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[int] = mapped_column(
        ForeignKey("allocation_projects.id", ondelete="RESTRICT"), index=True
    )
    account: Mapped[str] = mapped_column(
        String(NAME_LENGTH), default="", server_default=""
    )
    username: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    partition: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    started: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    elapsed_seconds: Mapped[int]
    cpus: Mapped[int]
    cpu_hours: Mapped[float] = mapped_column(Float)

    __table_args__ = (UniqueConstraint("machine_id", "job_id", "started"),)


class Usage(db.Model):
    """Usage of one resource by one submitting project on one day.

    CPU hours add up over the day's jobs; disk snapshots keep the day's peak.
    ``quantity`` is scaled by the resource's factor, ``raw_quantity`` is not.
    """

    __tablename__ = "allocation_usages"

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(
        ForeignKey("allocation_resources.id", ondelete="RESTRICT")
    )
    project_id: Mapped[int] = mapped_column(
        ForeignKey("allocation_projects.id", ondelete="RESTRICT"), index=True
    )
    day: Mapped[dt.date] = mapped_column(Date)
    quantity: Mapped[float] = mapped_column(Float)
    raw_quantity: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(default=0)

    __table_args__ = (
        UniqueConstraint("resource_id", "project_id", "day"),
        Index("ix_allocation_usages_resource_id_day", "resource_id", "day"),
    )


# Models whose edits go to the audit trail (usage is tracked by BatchOperations).
AUDITED_MODELS: tuple[type[db.Model], ...] = (
    Project,
    Scheme,
    Grant,
    ResourcePool,
    Machine,
    Resource,
    AllocationPeriod,
    AllocationPool,
    Allocation,
    AccountMap,
)

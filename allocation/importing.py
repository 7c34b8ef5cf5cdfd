"""Store parsed usage: jobs once each, then their CPU hours added to daily usage.

Importing the same file twice changes nothing: a job run is inserted only if its
(machine, job id, start) is absent, and only jobs inserted now add to the daily usage
rows. Snapshots keep each day's peak, which a repeat cannot raise. The caller
commits, chunk by chunk, through ``on_chunk``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Date, case, cast, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from allocation import pg_bulk
from allocation.models import (
    FUNCTION_SUM,
    AccountMap,
    Job,
    Machine,
    Project,
    Resource,
    ResourcePool,
    Usage,
)
from allocation.sacct import (
    SECONDS_PER_HOUR,
    LineProblem,
    SacctOptions,
)
from allocation.sacct_stream import (
    ACCOUNT,
    BEGIN,
    CLUSTER,
    CPU_SECONDS,
    CPUS,
    DAYS,
    ELAPSED_SECONDS,
    FINISH,
    JOB_ID,
    LINE,
    PARTITION,
    USER,
    ParsedChunk,
    chunks,
    parsed_chunks,
)
from allocation.snapshots import Snapshot, parse_snapshots
from allocation.units import bytes_per_unit

MAX_REPORTED_PROBLEMS = 100
JOBS = Job.__table__
USAGES = Usage.__table__


@dataclass
class ImportReport:
    """What an import did; ``problems`` keeps the first ``problem_limit`` bad
    lines (a chunk's report keeps all of its own, for ``on_chunk`` to see)."""

    lines: int = 0
    imported: int = 0
    already_present: int = 0
    skipped: int = 0
    not_started: int = 0
    failed: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    problem_limit: int | None = MAX_REPORTED_PROBLEMS

    def add_problem(self, line: int, message: str) -> None:
        """Count a bad line; keep its number and message if there is room."""
        self.failed += 1
        if self.problem_limit is None or len(self.problems) < self.problem_limit:
            self.problems.append((line, message))

    def add(self, other: ImportReport) -> None:
        """Add a chunk's counts and problems to these."""
        self.lines += other.lines
        self.imported += other.imported
        self.already_present += other.already_present
        self.skipped += other.skipped
        self.not_started += other.not_started
        for line, message in other.problems:
            self.add_problem(line, message)
        self.failed += other.failed - len(other.problems)

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON for the batch operation's output."""
        return {
            "lines": self.lines,
            "imported": self.imported,
            "already_present": self.already_present,
            "skipped": self.skipped,
            "not_started": self.not_started,
            "failed": self.failed,
            "problems": [{"line": line, "message": m} for line, m in self.problems],
        }

    def summary(self) -> str:
        """Return the counts as one line of text."""
        lines = "line" if self.lines == 1 else "lines"
        return (
            f"{self.lines} {lines}: {self.imported} imported, "
            f"{self.already_present} already present, {self.skipped} skipped: "
            f"job steps and unfinished jobs ({self.not_started} never started), "
            f"{self.failed} with problems"
        )


def _insert(session: Session, table):
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return module.insert(table)


def _execute_many(
    session: Session, statement, rows: list[dict], ready: Iterable[str] = ()
) -> int:
    """Run ``statement`` once per row; return how many rows it changed.
    On SQLite, the values of the ``ready`` columns are already what the
    driver takes.

    On SQLite the statement is compiled once and handed to the driver with each
    row's values through the columns' own bind processors: the same values
    SQLAlchemy would send, without its per-row bookkeeping, which dominated a
    large import. Elsewhere SQLAlchemy's executemany is used as it is.
    """
    dialect = session.get_bind().dialect
    if dialect.name != "sqlite":
        return session.execute(statement, rows).rowcount
    compiled = statement.compile(dialect=dialect, column_keys=list(rows[0]))
    names = compiled.positiontup
    ready = set(ready)
    processors = [
        None
        if compiled.binds[name].key in ready
        else _quick_bind(
            compiled.binds[name].type,
            compiled.binds[name].type._cached_bind_processor(dialect),
        )
        for name in names
    ]
    keys = [compiled.binds[name].key for name in names]
    plan = list(zip(keys, processors, strict=True))
    values = [
        tuple(
            row[key] if process is None else process(row[key]) for key, process in plan
        )
        for row in rows
    ]
    cursor = session.connection().exec_driver_sql(compiled.string, values)
    return cursor.rowcount


_DAY_TEXT: dict[int, str] = {}
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_HOURS_MINUTES = [f"{h:02d}:{m:02d}" for h in range(24) for m in range(60)]
_SECONDS = [f":{s:02d}.000000" for s in range(60)]


def _sqlite_utc_text(instant: int) -> str:
    """The text SQLite keeps for the UTC time at Unix second ``instant``."""
    day, seconds = divmod(instant, 86400)
    prefix = _DAY_TEXT.get(day)
    if prefix is None:
        prefix = dt.date.fromordinal(_EPOCH_ORDINAL + day).isoformat() + " "
        if len(_DAY_TEXT) > 100_000:
            _DAY_TEXT.clear()
        _DAY_TEXT[day] = prefix
    minutes, second = divmod(seconds, 60)
    return prefix + _HOURS_MINUTES[minutes] + _SECONDS[second]


def _utc_texts_match(session: Session) -> bool:
    """Whether ``_sqlite_utc_text`` gives exactly what the jobs' time columns
    store (their own bind processor), for probe instants."""
    dialect = session.get_bind().dialect
    process = JOBS.c.started.type._cached_bind_processor(dialect)
    probes = (0, 86399, 4_107_546_896, -86_401, 253_402_300_799)
    return all(
        process(dt.datetime.fromtimestamp(probe, dt.UTC)) == _sqlite_utc_text(probe)
        for probe in probes
    )


def _quick_bind(type_: Any, process: Callable | None) -> Callable | None:
    """On SQLite, ``date.isoformat`` for a date column's bind processor if it
    gives exactly the processor's text (a million usage days went through
    three Python calls each)."""
    if process is None or type(type_) is not Date:
        return process
    probes = (dt.date(2100, 3, 4), dt.date(1999, 12, 31))
    if any(probe.isoformat() != process(probe) for probe in probes):
        return process

    def quick(value):
        return value.isoformat() if type(value) is dt.date else process(value)

    return quick


def resources_named(session: Session, name: str) -> dict[str, list[Resource]]:
    """Return {machine name: its resources called ``name``}."""
    found: dict[str, list[Resource]] = {}
    rows = session.execute(
        select(Machine.name, Resource)
        .join(Resource, Resource.machine_id == Machine.id)
        .where(Resource.name == name)
    )
    for machine_name, resource in rows:
        found.setdefault(machine_name, []).append(resource)
    return found


AMBIGUOUS = -1


def project_ids_by_name(session: Session) -> dict[str, int]:
    """Return {lower-case Slurm account: project id}: mapped accounts, then
    project names matched case-insensitively (AMBIGUOUS where two names differ
    only by case and no map settles it)."""
    found: dict[str, int] = {}
    for name, id_ in session.execute(select(Project.name, Project.id)):
        key = name.lower()
        found[key] = AMBIGUOUS if key in found and found[key] != id_ else id_
    for account, project_id in session.execute(
        select(AccountMap.account, AccountMap.project_id)
    ):
        found[account.lower()] = project_id
    return found


def project_for_account(projects: dict[str, int], account: str) -> int | str:
    """Return the project id ``account`` charges, or why there is none."""
    project_id = projects.get(account.lower())
    if project_id is None:
        return f"unknown account {account!r}: no project or account map of this name"
    if project_id == AMBIGUOUS:
        return (
            f"account {account!r} matches several projects differing only in case; "
            "map it to one"
        )
    return project_id


@dataclass(frozen=True)
class _Target:
    machine_id: int
    resource_id: int
    scaling_factor: float


def _cpu_targets(session: Session, resource_name: str) -> dict[str, _Target | str]:
    """Map each machine to the resource its CPU hours feed, or to why none does."""
    targets: dict[str, _Target | str] = {}
    for machine, candidates in resources_named(session, resource_name).items():
        if len(candidates) > 1:
            targets[machine] = (
                f"machine {machine!r} has {len(candidates)} resources named "
                f"{resource_name!r}; keep one"
            )
            continue
        resource = candidates[0]
        targets[machine] = _Target(
            resource.machine_id, resource.id, resource.scaling_factor
        )
    return targets


class JobsChangedDuringImport(RuntimeError):
    """Another writer stored some of the same job runs while this chunk ran."""


def _unix_seconds(session: Session, column) -> Any:
    """``column`` (a UTC time) as whole Unix seconds, computed by the database:
    comparing numbers spares turning a million stored times into datetimes."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(func.extract("epoch", column)), BigInteger)
    return cast(func.strftime("%s", column), BigInteger)


def _existing_runs(session: Session, jobs: list[tuple[tuple, _Target, int]]) -> set:
    """Return the (machine_id, job_id, started Unix seconds) of these runs
    already stored."""
    found = set()
    started = _unix_seconds(session, JOBS.c.started)
    by_machine: dict[int, set[str]] = {}
    for job, target, _project in jobs:
        by_machine.setdefault(target.machine_id, set()).add(job[JOB_ID])
    for machine_id, id_set in by_machine.items():
        # The unique index leads with machine_id: each batch is an index lookup.
        job_ids = sorted(id_set)
        for start in range(0, len(job_ids), 900):
            rows = session.execute(
                select(JOBS.c.job_id, started).where(
                    JOBS.c.machine_id == machine_id,
                    JOBS.c.job_id.in_(job_ids[start : start + 900]),
                )
            )
            found.update((machine_id, job_id, at) for job_id, at in rows)
    return found


def _write_jobs(session: Session, jobs: list[tuple[tuple, _Target, int]]) -> set:
    """Insert the job runs not yet stored; return the keys inserted.

    On PostgreSQL (psycopg) the runs go in through COPY and the database
    answers which were new. Elsewhere the runs already stored are looked up
    first, so the rest go in as one plain bulk insert; the unique key still
    guards it: if another writer slipped some of the same runs in meanwhile,
    the chunk fails rather than charge twice.
    """
    if not jobs:
        return set()
    if pg_bulk.usable(session):
        return pg_bulk.insert_runs(
            session,
            [
                (
                    target.machine_id,
                    job[JOB_ID],
                    project_id,
                    job[ACCOUNT].lower(),  # as Slurm keeps it
                    job[USER],
                    job[PARTITION],
                    job[BEGIN],
                    job[FINISH],
                    job[ELAPSED_SECONDS],
                    job[CPUS],
                    job[CPU_SECONDS] / SECONDS_PER_HOUR,
                )
                for job, target, project_id in jobs
            ],
        )
    present = _existing_runs(session, jobs)
    new = [
        (job, target, project_id)
        for job, target, project_id in jobs
        if (target.machine_id, job[JOB_ID], job[BEGIN]) not in present
    ]
    if not new:
        return set()
    sqlite_texts = session.get_bind().dialect.name == "sqlite" and _utc_texts_match(
        session
    )
    # On SQLite the times go in as the text it keeps, made from the Unix
    # seconds: no datetime is made for a million runs.
    when = _sqlite_utc_text if sqlite_texts else _utc_datetime
    rows = [
        {
            "machine_id": target.machine_id,
            "job_id": job[JOB_ID],
            "project_id": project_id,
            "account": job[ACCOUNT].lower(),  # as Slurm keeps it
            "username": job[USER],
            "partition": job[PARTITION],
            "started": when(job[BEGIN]),
            "ended": when(job[FINISH]),
            "elapsed_seconds": job[ELAPSED_SECONDS],
            "cpus": job[CPUS],
            "cpu_hours": job[CPU_SECONDS] / SECONDS_PER_HOUR,
        }
        for job, target, project_id in new
    ]
    statement = _insert(session, JOBS).on_conflict_do_nothing(
        index_elements=["machine_id", "job_id", "started"]
    )
    if session.get_bind().dialect.name == "sqlite":
        ready = ("started", "ended") if sqlite_texts else ()
        inserted = _execute_many(session, statement, rows, ready)
    else:
        # Counted from RETURNING: psycopg's executemany rowcount is unreliable.
        inserted = len(session.execute(statement.returning(JOBS.c.id), rows).all())
    if inserted != len(rows):
        raise JobsChangedDuringImport(
            "some job runs were stored by another import meanwhile; run it again"
        )
    return {(target.machine_id, job[JOB_ID], job[BEGIN]) for job, target, _p in new}


def _utc_datetime(instant: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(instant, dt.UTC)


def _add_usage(session: Session, totals: dict[tuple, list[float]]) -> None:
    """Add daily quantities to the usage rows, creating those that are missing;
    ``totals`` is keyed by (resource id, project id, date ordinal)."""
    if not totals:
        return
    if pg_bulk.usable(session):
        pg_bulk.add_usage(
            session,
            [
                (
                    resource_id,
                    project_id,
                    dt.date.fromordinal(day),
                    quantity,
                    raw,
                    count,
                )
                for (resource_id, project_id, day), (quantity, raw, count) in sorted(
                    totals.items()
                )
            ],
        )
        return
    rows = [
        {
            "resource_id": resource_id,
            "project_id": project_id,
            "day": dt.date.fromordinal(day),
            "quantity": quantity,
            "raw_quantity": raw,
            "count": int(count),
        }
        for (resource_id, project_id, day), (quantity, raw, count) in sorted(
            totals.items()
        )
    ]
    statement = _insert(session, USAGES)
    statement = statement.on_conflict_do_update(
        index_elements=["resource_id", "project_id", "day"],
        set_={
            "quantity": USAGES.c.quantity + statement.excluded.quantity,
            "raw_quantity": USAGES.c.raw_quantity + statement.excluded.raw_quantity,
            "count": USAGES.c.count + statement.excluded.count,
        },
    )
    _execute_many(session, statement, rows)


def _import_job_chunk(
    session: Session,
    chunk: ParsedChunk,
    targets: dict[str, _Target | str],
    projects: dict[str, int],
) -> ImportReport:
    report = ImportReport(
        lines=chunk.lines,
        skipped=chunk.skipped,
        not_started=chunk.not_started,
        problem_limit=None,
    )
    problems = list(chunk.problems)
    wanted: dict[tuple[int, str, int], tuple[tuple, _Target, int]] = {}
    for job in chunk.jobs:
        cluster = job[CLUSTER]
        target = targets.get(cluster)
        if target is None:
            problems.append(
                (
                    job[LINE],
                    f"unknown cluster {cluster!r}: no machine with a "
                    "CPU resource of this name",
                )
            )
            continue
        if isinstance(target, str):
            problems.append((job[LINE], target))
            continue
        project_id = project_for_account(projects, job[ACCOUNT])
        if isinstance(project_id, str):
            problems.append((job[LINE], project_id))
            continue
        key = (target.machine_id, job[JOB_ID], job[BEGIN])
        if key in wanted:
            report.already_present += 1  # listed twice in the same file
            continue
        wanted[key] = (job, target, project_id)
    for line, message in sorted(problems):
        report.add_problem(line, message)
    inserted = _write_jobs(session, list(wanted.values()))
    report.imported = len(inserted)
    report.already_present += len(wanted) - len(inserted)
    totals: dict[tuple, list[float]] = {}
    for key in inserted:
        job, target, project_id = wanted[key]
        resource_id, factor = target.resource_id, target.scaling_factor
        for day, cpu_seconds in job[DAYS]:
            hours = cpu_seconds / SECONDS_PER_HOUR
            total = totals.get((resource_id, project_id, day))
            if total is None:
                total = totals[resource_id, project_id, day] = [0.0, 0.0, 0]
            # The scaling factor is applied here, once; jobs keep raw hours.
            total[0] += hours * factor
            total[1] += hours
            total[2] += 1
    _add_usage(session, totals)
    return report


def import_sacct(
    session: Session,
    lines: Iterable[str],
    zone: ZoneInfo,
    resource_name: str = "cpu",
    chunk_size: int = 5000,
    on_chunk: Callable[[ImportReport], None] | None = None,
    options: SacctOptions | None = None,
) -> ImportReport:
    """Import ``sacct --parsable2`` lines; bad lines are reported and skipped."""
    targets = _cpu_targets(session, resource_name)
    projects = project_ids_by_name(session)
    report = ImportReport()
    # Closed on any way out, so that a reading child process stops with it.
    with closing(parsed_chunks(lines, zone, options, chunk_size)) as chunks_read:
        for chunk in chunks_read:
            chunk_report = _import_job_chunk(session, chunk, targets, projects)
            report.add(chunk_report)
            if on_chunk is not None:
                on_chunk(chunk_report)
    return report


def _disk_resources(session: Session) -> dict[tuple[str, str], list]:
    """Map (machine name, resource name) to non-sum resources with their factor."""
    rows = session.execute(
        select(
            Machine.name,
            Resource.name,
            Resource.id,
            Resource.scaling_factor,
            ResourcePool.units,
        )
        .join(Resource, Resource.machine_id == Machine.id)
        .join(ResourcePool, ResourcePool.id == Resource.resource_pool_id)
        .where(ResourcePool.function != FUNCTION_SUM)
    )
    found: dict[tuple[str, str], list] = {}
    for machine, name, resource_id, factor, unit in rows:
        # Snapshots count bytes; the pool counts its own unit.
        found.setdefault((machine, name), []).append(
            (resource_id, factor / bytes_per_unit(unit))
        )
    return found


def _keep_peaks(session: Session, peaks: dict[tuple, list[float]]) -> None:
    """Raise each day's usage row to the snapshot's value if it is higher."""
    if not peaks:
        return
    rows = [
        {
            "resource_id": resource_id,
            "project_id": project_id,
            "day": day,
            "quantity": quantity,
            "raw_quantity": raw,
            "count": 1,
        }
        for (resource_id, project_id, day), (quantity, raw) in sorted(peaks.items())
    ]
    statement = _insert(session, USAGES)
    higher = statement.excluded.quantity > USAGES.c.quantity
    statement = statement.on_conflict_do_update(
        index_elements=["resource_id", "project_id", "day"],
        set_={
            "quantity": case(
                (higher, statement.excluded.quantity), else_=USAGES.c.quantity
            ),
            "raw_quantity": case(
                (higher, statement.excluded.raw_quantity), else_=USAGES.c.raw_quantity
            ),
        },
    )
    session.execute(statement, rows)


def import_snapshots(
    session: Session,
    lines: Iterable[str],
    zone: ZoneInfo,
    resource_name: str = "disk",
    chunk_size: int = 5000,
    on_chunk: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Import disk-usage snapshots into max-type (or min/avg/last) pools' usage."""
    resources = _disk_resources(session)
    projects = project_ids_by_name(session)
    report = ImportReport()
    for chunk in chunks(parse_snapshots(lines, zone), chunk_size):
        chunk_report = ImportReport(lines=len(chunk), problem_limit=None)
        peaks: dict[tuple, list[float]] = {}
        for item in chunk:
            if isinstance(item, LineProblem):
                chunk_report.add_problem(item.line, item.message)
                continue
            assert isinstance(item, Snapshot)
            name = item.resource or resource_name
            candidates = resources.get((item.machine, name), [])
            if len(candidates) != 1:
                chunk_report.add_problem(
                    item.line,
                    f"machine {item.machine!r} has no single resource {name!r} "
                    "in a max-type pool"
                    if not candidates
                    else f"machine {item.machine!r} has several resources {name!r}",
                )
                continue
            project_id = project_for_account(projects, item.project)
            if isinstance(project_id, str):
                chunk_report.add_problem(item.line, project_id)
                continue
            resource_id, factor = candidates[0]
            key = (resource_id, project_id, item.day)
            value = [item.bytes * factor, float(item.bytes)]
            if key not in peaks or value[0] > peaks[key][0]:
                peaks[key] = value
            chunk_report.imported += 1
        _keep_peaks(session, peaks)
        report.add(chunk_report)
        if on_chunk is not None:
            on_chunk(chunk_report)
    return report

"""Import 1,000,000 sacct lines and compute every pool's ledger, against a naive way.

    python -m bench.allocation [--lines 1000000] [--naive-lines 4000] [--seed 7]

Our way: ``allocation.importing.import_sacct`` (insert-if-absent jobs, daily usage
upserts, a commit per chunk) then ``allocation.ledger.ledger`` (one SQL query with
a recursive resolution). The naive way, in the same run on its own database: read
with ``csv``, add one ORM ``Job`` per row, and for each row walk the project tree
with ORM look-ups and add its hours to a Python dict per pool. The naive way runs
on the first ``--naive-lines`` lines and its time is extrapolated to all lines;
both ways are run on that subset too and must give the same totals.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from allocation.importing import import_sacct
from allocation.ledger import ledger
from allocation.models import (
    MODE_PRIVATE,
    MODE_SHARED,
    Allocation,
    AllocationPeriod,
    AllocationPool,
    Grant,
    Job,
    Machine,
    Project,
    Resource,
    ResourcePool,
    Scheme,
)
from allocation.sacct import parse_elapsed
from tracker import create_app
from tracker.extensions import db
from tracker.models import import_all_models

RESULTS = Path(__file__).resolve().parents[1] / "results" / "allocation.json"
HEADER = "JobID|Cluster|Account|User|Partition|Start|End|Elapsed|AllocCPUS|State"
MACHINES = {"brecca": 1.0, "tango": 1.3, "avoca": 0.8}
YEAR = 2100
QUARTERS = [
    (
        f"{YEAR}Q{q}",
        date(YEAR, 3 * q - 2, 1),
        date(YEAR + (q == 4), (3 * q) % 12 + 1, 1),
    )
    for q in range(1, 5)
]
ZONE = ZoneInfo("UTC")


def project_tree(rng: random.Random) -> list[tuple[str, str | None, str]]:
    """A few hundred projects: institutes, faculties, projects (name, parent, mode)."""
    tree = []
    for i in range(8):
        institute = f"inst{i}"
        tree.append((institute, None, MODE_SHARED))
        for f in range(4):
            faculty = f"{institute}-fac{f}"
            tree.append((faculty, institute, MODE_SHARED))
            for p in range(rng.randint(6, 10)):
                mode = MODE_PRIVATE if rng.random() < 0.3 else MODE_SHARED
                tree.append((f"{faculty}-p{p}", faculty, mode))
    return tree


def build_site(tree, rng: random.Random) -> None:
    """Machines, a CPU pool, four quarters, pools and allocations for some projects."""
    session = db.session
    cpu = ResourcePool(name="CPU Hours", units="CPU hours", function="sum")
    scheme = Scheme(name="Bench", opened=date(YEAR, 1, 1))
    session.add_all([cpu, scheme])
    for name, factor in MACHINES.items():
        machine = Machine(name=name)
        session.add(machine)
        session.add(
            Resource(
                machine=machine, resource_pool=cpu, name="cpu", scaling_factor=factor
            )
        )
    periods = [AllocationPeriod(name=n, start=s, end=e) for n, s, e in QUARTERS]
    session.add_all(periods)
    projects: dict[str, Project] = {}
    for name, parent, mode in tree:
        projects[name] = Project(
            name=name, parent=projects.get(parent), allocation_mode=mode
        )
        session.add(projects[name])
    session.flush()
    pooled = [p for p in projects.values() if p.parent is None or rng.random() < 0.35]
    for project in pooled:
        grant = Grant(
            project_id=project.id,
            scheme_id=scheme.id,
            date=date(YEAR, 1, 1),
            begins=date(YEAR, 1, 1),
            expires=date(YEAR, 12, 31),
        )
        session.add(grant)
        session.flush()
        for period in periods:
            pool = AllocationPool(
                project_id=project.id, period_id=period.id, resource_pool_id=cpu.id
            )
            session.add(pool)
            session.flush()
            session.add(
                Allocation(
                    grant_id=grant.id,
                    allocation_pool_id=pool.id,
                    project_id=project.id,
                    quantity=float(rng.randint(1, 50) * 1000),
                )
            )
    session.commit()


def write_sacct(
    path: Path, count: int, accounts: list[str], rng: random.Random
) -> None:
    """Write ``count`` lines: finished jobs, with a job step after some of them."""
    machines = list(MACHINES)
    start_of_year = datetime(YEAR, 1, 1, tzinfo=UTC)
    with path.open("w", encoding="utf-8") as handle:
        handle.write(HEADER + "\n")
        written, job = 0, 0
        while written < count:
            job += 1
            start = start_of_year + timedelta(
                seconds=rng.randrange(365 * 86400 - 86400)
            )
            seconds = rng.randrange(60, 36 * 3600)
            end = start + timedelta(seconds=seconds)
            hours, rest = divmod(seconds, 3600)
            elapsed = f"{hours // 24}-{hours % 24:02d}:{rest // 60:02d}:{rest % 60:02d}"
            fields = [
                str(job),
                rng.choice(machines),
                rng.choice(accounts),
                f"user{rng.randrange(2000)}",
                "main",
                start.strftime("%Y-%m-%dT%H:%M:%S"),
                end.strftime("%Y-%m-%dT%H:%M:%S"),
                elapsed,
                str(rng.choice((1, 2, 4, 8, 16, 32))),
                "COMPLETED",
            ]
            handle.write("|".join(fields) + "\n")
            written += 1
            if written < count and rng.random() < 0.1:
                fields[0] = f"{job}.batch"
                handle.write("|".join(fields) + "\n")
                written += 1


def fresh_app(directory: Path, name: str):
    """Build an app on a new SQLite file in ``directory`` with every table."""
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{directory / name}"},
        instance_path=directory / f"instance-{name}",
        environ={},
    )
    with app.app_context():
        import_all_models()
        db.create_all()
    return app


def run_ours(path: Path, chunk_size: int) -> tuple[float, float, dict, object]:
    """Import with our code, committing per chunk, then compute the ledger."""
    session = db.session
    started = time.perf_counter()
    with path.open(encoding="utf-8") as handle:
        report = import_sacct(
            session,
            handle,
            ZONE,
            chunk_size=chunk_size,
            on_chunk=lambda _c: session.commit(),
        )
    session.commit()
    import_seconds = time.perf_counter() - started
    started = time.perf_counter()
    lines = ledger(session)
    ledger_seconds = time.perf_counter() - started
    return (
        import_seconds,
        ledger_seconds,
        {line.pool_id: line.used for line in lines},
        report,
    )


def _naive_charged(session, project: Project, period_id: int, pool_id: int) -> Project:
    while True:
        has_pool = session.scalar(
            select(AllocationPool.id).where(
                AllocationPool.project_id == project.id,
                AllocationPool.period_id == period_id,
                AllocationPool.resource_pool_id == pool_id,
            )
        )
        if (
            has_pool
            or project.allocation_mode == MODE_PRIVATE
            or project.parent is None
        ):
            return project
        project = project.parent


def run_naive(path: Path, limit: int) -> tuple[float, dict]:
    """csv + one ORM insert per row + Python aggregation per row, on ``limit`` rows."""
    session = db.session
    started = time.perf_counter()
    periods = session.scalars(select(AllocationPeriod)).all()
    used: dict[int, float] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="|")
        for number, row in enumerate(reader):
            if number >= limit:
                break
            if "." in row["JobID"]:
                continue
            machine = session.scalar(
                select(Machine).where(Machine.name == row["Cluster"])
            )
            project = session.scalar(
                select(Project).where(Project.name == row["Account"])
            )
            resource = session.scalar(
                select(Resource).where(
                    Resource.machine_id == machine.id, Resource.name == "cpu"
                )
            )
            begin = datetime.fromisoformat(row["Start"]).replace(tzinfo=UTC)
            finish = datetime.fromisoformat(row["End"]).replace(tzinfo=UTC)
            seconds = parse_elapsed(row["Elapsed"])
            hours = int(row["AllocCPUS"]) * seconds / 3600
            session.add(
                Job(
                    machine_id=machine.id,
                    job_id=row["JobID"],
                    project_id=project.id,
                    username=row["User"],
                    partition=row["Partition"],
                    started=begin,
                    ended=finish,
                    elapsed_seconds=seconds,
                    cpus=int(row["AllocCPUS"]),
                    cpu_hours=hours,
                )
            )
            session.commit()
            # Per-row day split, resolution and accumulation, all in Python.
            span = (finish - begin).total_seconds()
            day = begin.date()
            while day <= finish.date():
                day_start = max(begin, datetime.combine(day, datetime.min.time(), UTC))
                day_end = min(
                    finish,
                    datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC),
                )
                share = hours * (day_end - day_start).total_seconds() / span
                for period in periods:
                    if period.start <= day < period.end:
                        charged = _naive_charged(
                            session, project, period.id, resource.resource_pool_id
                        )
                        pool_id = session.scalar(
                            select(AllocationPool.id).where(
                                AllocationPool.project_id == charged.id,
                                AllocationPool.period_id == period.id,
                                AllocationPool.resource_pool_id
                                == resource.resource_pool_id,
                            )
                        )
                        if pool_id is not None:
                            used[pool_id] = (
                                used.get(pool_id, 0.0) + share * resource.scaling_factor
                            )
                day += timedelta(days=1)
    return time.perf_counter() - started, used


def main() -> None:
    """Generate the data, run both ways, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--naive-lines", type=int, default=4_000)
    parser.add_argument("--chunk-size", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    tree = project_tree(rng)
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        sacct = directory / "sacct.txt"
        site_seed = rng.random()
        started = time.perf_counter()
        write_sacct(sacct, args.lines, [name for name, _p, _m in tree], rng)
        print(
            f"Generated {args.lines:,} sacct lines, {len(tree)} projects, "
            f"{len(MACHINES)} machines in {time.perf_counter() - started:.1f} s"
        )

        subset = directory / "subset.txt"
        with (
            sacct.open(encoding="utf-8") as source,
            subset.open("w", encoding="utf-8") as out,
        ):
            for number, line in enumerate(source):
                if number > args.naive_lines:
                    break
                out.write(line)

        app = fresh_app(directory, "ours.sqlite")
        with app.app_context():
            build_site(tree, random.Random(site_seed))
            import_s, ledger_s, _used, report = run_ours(sacct, args.chunk_size)
            pools = len(_used)
            again_s, _again_ledger, used_again, again = run_ours(sacct, args.chunk_size)
            assert again.imported == 0 and used_again == _used, "re-import changed data"
            db.engine.dispose()

        check = fresh_app(directory, "check.sqlite")
        with check.app_context():
            build_site(tree, random.Random(site_seed))
            _s, _l, ours_on_subset, _r = run_ours(subset, args.chunk_size)
            db.engine.dispose()

        naive = fresh_app(directory, "naive.sqlite")
        with naive.app_context():
            build_site(tree, random.Random(site_seed))
            naive_s, naive_used = run_naive(subset, args.naive_lines)
            db.engine.dispose()

    agree = all(
        abs(ours_on_subset.get(pool, 0.0) - value) < 1e-6 * max(1.0, abs(value))
        for pool, value in naive_used.items()
    ) and all(
        abs(value - naive_used.get(pool, 0.0)) < 1e-6 * max(1.0, abs(value))
        for pool, value in ours_on_subset.items()
    )
    naive_rate = args.naive_lines / naive_s
    naive_extrapolated = args.lines / naive_rate
    ours_total = import_s + ledger_s
    results = {
        "lines": args.lines,
        "projects": len(tree),
        "machines": len(MACHINES),
        "allocation_pools": pools,
        "jobs_imported": report.imported,
        "steps_skipped": report.skipped,
        "ours": {
            "import_seconds": round(import_s, 2),
            "ledger_seconds": round(ledger_s, 3),
            "lines_per_second": round(args.lines / import_s),
            "reimport_seconds": round(again_s, 2),
        },
        "naive": {
            "measured_lines": args.naive_lines,
            "measured_seconds": round(naive_s, 2),
            "lines_per_second": round(naive_rate),
            "extrapolated_seconds_for_all_lines": round(naive_extrapolated, 1),
        },
        "speedup": round(naive_extrapolated / ours_total, 1),
        "subset_totals_agree": agree,
        "database": "sqlite",
    }
    print(
        f"ours:  import {import_s:.1f} s ({args.lines / import_s:,.0f} lines/s), "
        f"ledger of {pools} pools {ledger_s:.3f} s; "
        f"re-import {again_s:.1f} s, no change"
    )
    print(
        f"naive: {args.naive_lines:,} lines in {naive_s:.1f} s "
        f"({naive_rate:,.0f} lines/s), "
        f"extrapolated to {args.lines:,} lines: {naive_extrapolated:,.0f} s"
    )
    print(
        f"ratio: ours is {results['speedup']}x faster (import + ledger); "
        f"totals on the {args.naive_lines:,}-line subset agree: {agree}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

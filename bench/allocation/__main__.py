"""Import 1,000,000 sacct lines and compute every pool's ledger, against a
minimal importer with plain bulk inserts.

    python -m bench.allocation [--lines 1000000] [--chunk-size 20000] [--seed 7]

Ours: ``allocation.importing.import_sacct`` (every line checked, runs already
stored looked up, jobs bulk-inserted, daily usage upserted, a commit per chunk)
then ``allocation.ledger.ledger`` (one SQL query with a recursive resolution),
then the same file imported again (nothing may change). The baseline, in the
same run on its own database: ``csv`` reads the lines, steps are dropped, jobs
go in with plain bulk inserts, hours are split over UTC days in a Python dict
and inserted as usage in bulk, then the same ledger query. It checks nothing and
cannot re-import; both must give the same totals for every pool.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
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
    Usage,
)
from allocation.sacct import parse_elapsed
from bench.common import bounded_int
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
    cpu = ResourcePool(name="CPU Hours", units="CPU-hours", function="sum")
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
            # sacct lists jobs in job id order: starts follow, a few hours apart
            # at most (a queue), over the year.
            start = start_of_year + timedelta(
                seconds=int((364 * 86400 - 7200) * written / count)
                + rng.randrange(7200)
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


def run_baseline(path: Path, chunk_size: int) -> tuple[float, float, dict]:
    """The least an importer can do: csv, plain bulk inserts, one dict of days."""
    session = db.session
    started = time.perf_counter()
    targets = {
        machine: (machine_id, resource_id, factor)
        for machine, machine_id, resource_id, factor in session.execute(
            select(Machine.name, Machine.id, Resource.id, Resource.scaling_factor).join(
                Resource, Resource.machine_id == Machine.id
            )
        )
    }
    projects = dict(session.execute(select(Project.name, Project.id)).all())
    usage: dict[tuple, list[float]] = {}
    jobs: list[dict] = []
    jobs_table = Job.__table__
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="|")
        column = {name: index for index, name in enumerate(next(reader))}
        for row in reader:
            if "." in row[column["JobID"]]:
                continue
            machine_id, resource_id, factor = targets[row[column["Cluster"]]]
            project_id = projects[row[column["Account"]]]
            begin = datetime.fromisoformat(row[column["Start"]]).replace(tzinfo=UTC)
            finish = datetime.fromisoformat(row[column["End"]]).replace(tzinfo=UTC)
            seconds = parse_elapsed(row[column["Elapsed"]])
            cpus = int(row[column["AllocCPUS"]])
            hours = cpus * seconds / 3600
            jobs.append(
                {
                    "machine_id": machine_id,
                    "job_id": row[column["JobID"]],
                    "project_id": project_id,
                    "account": row[column["Account"]],
                    "username": row[column["User"]],
                    "partition": row[column["Partition"]],
                    "started": begin,
                    "ended": finish,
                    "elapsed_seconds": seconds,
                    "cpus": cpus,
                    "cpu_hours": hours,
                }
            )
            first, last = int(begin.timestamp()), int(finish.timestamp())
            span = last - first
            day_start = first - first % 86400
            while True:
                day_end = day_start + 86400
                piece = min(day_end, last) - max(day_start, first)
                share = hours if span == 0 else hours * piece / span
                day = datetime.fromtimestamp(day_start, UTC).date()
                total = usage.setdefault((resource_id, project_id, day), [0, 0, 0])
                total[0] += share * factor
                total[1] += share
                total[2] += 1
                if day_end >= last:
                    break
                day_start = day_end
            if len(jobs) >= chunk_size:
                session.execute(jobs_table.insert(), jobs)
                session.commit()
                jobs = []
    if jobs:
        session.execute(jobs_table.insert(), jobs)
    session.execute(
        Usage.__table__.insert(),
        [
            {
                "resource_id": resource_id,
                "project_id": project_id,
                "day": day,
                "quantity": quantity,
                "raw_quantity": raw,
                "count": int(count),
            }
            for (resource_id, project_id, day), (quantity, raw, count) in usage.items()
        ],
    )
    session.commit()
    import_seconds = time.perf_counter() - started
    started = time.perf_counter()
    lines = ledger(session)
    return (
        import_seconds,
        time.perf_counter() - started,
        {line.pool_id: line.used for line in lines},
    )


def cpu_seconds() -> float:
    """CPU used so far by this process and the children it has waited for
    (the import reads lines in a child process)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def main() -> None:
    """Generate the data, run both ways, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=bounded_int(10, 10**8), default=1_000_000)
    parser.add_argument("--chunk-size", type=bounded_int(1, 100_000), default=20_000)
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

        base = fresh_app(directory, "baseline.sqlite")
        with base.app_context():
            build_site(tree, random.Random(site_seed))
            cpu = cpu_seconds()
            base_import, base_ledger, base_used = run_baseline(sacct, args.chunk_size)
            base_cpu = cpu_seconds() - cpu
            db.engine.dispose()

        app = fresh_app(directory, "ours.sqlite")
        with app.app_context():
            build_site(tree, random.Random(site_seed))
            cpu = cpu_seconds()
            import_s, ledger_s, used, report = run_ours(sacct, args.chunk_size)
            ours_cpu = cpu_seconds() - cpu
            again_s, _again_ledger, used_again, again = run_ours(sacct, args.chunk_size)
            again_cpu = cpu_seconds() - cpu - ours_cpu
            assert again.imported == 0 and used_again == used, "re-import changed data"
            db.engine.dispose()

    agree = used.keys() == base_used.keys() and all(
        abs(value - base_used[pool]) < 1e-6 * max(1.0, abs(value))
        for pool, value in used.items()
    )
    ours_total = import_s + ledger_s
    base_total = base_import + base_ledger
    results = {
        "lines": args.lines,
        "projects": len(tree),
        "machines": len(MACHINES),
        "allocation_pools": len(used),
        "jobs_imported": report.imported,
        "steps_skipped": report.skipped,
        "ours": {
            "import_seconds": round(import_s, 2),
            "ledger_seconds": round(ledger_s, 3),
            "import_and_ledger_seconds": round(ours_total, 2),
            "lines_per_second": round(args.lines / import_s),
            "reimport_seconds": round(again_s, 2),
            "cpu_seconds_import_and_ledger": round(ours_cpu, 2),
            "cpu_seconds_reimport": round(again_cpu, 2),
        },
        "baseline": {
            "import_seconds": round(base_import, 2),
            "ledger_seconds": round(base_ledger, 3),
            "import_and_ledger_seconds": round(base_total, 2),
            "cpu_seconds_import_and_ledger": round(base_cpu, 2),
        },
        "ours_over_baseline": round(ours_total / base_total, 2),
        "ours_over_baseline_cpu": round(ours_cpu / base_cpu, 2),
        "totals_agree": agree,
        "database": "sqlite",
    }
    print(
        f"ours:     import {import_s:.1f} s ({args.lines / import_s:,.0f} lines/s), "
        f"ledger of {len(used)} pools {ledger_s:.2f} s, total {ours_total:.1f} s; "
        f"re-import {again_s:.1f} s, no change"
    )
    print(
        f"baseline: import {base_import:.1f} s, ledger {base_ledger:.2f} s, "
        f"total {base_total:.1f} s (no checks, no re-import)"
    )
    print(
        f"cpu:      ours {ours_cpu:.1f} s (re-import {again_cpu:.1f} s), "
        f"baseline {base_cpu:.1f} s: {results['ours_over_baseline_cpu']}x (both "
        "processes of ours); the machine's other load slows wall-clock times, "
        "not these"
    )
    print(
        f"ratio: ours takes {results['ours_over_baseline']}x the baseline's time; "
        f"totals of every pool agree: {agree}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

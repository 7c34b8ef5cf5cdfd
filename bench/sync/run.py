"""Benchmark sync end to end: 100,000 transactions from 10 producers, applied.

    python -m bench.sync [--transactions 100000] [--producers 10]
                         [--databases sqlite,postgresql] [--workers 4]
                         [--naive-transactions 10000] [--profile]

For each database (a SQLite file; a throwaway PostgreSQL cluster), on a fresh
database each time:

1. REST push: the app under gunicorn on 127.0.0.1; every producer pushes its
   transactions in signed bundles of 1000 (``send_bundle`` with
   ``HttpTransport``), all producers at once, one thread each. Timed from the
   first push until every producer's ``applied_through`` is at its last sequence
   (anything the replies left unapplied is applied by ``apply_all`` in the
   timing, as beat would).
2. File import: one bundle file per producer (``write_bundle_file``), imported
   one after the other with ``import_file`` in-process, as ``sync import`` does.
3. Naive apply: the same transactions applied one at a time (ORM look-up by
   model and natural key, insert/update/delete, cursor, commit), on the first
   ``--naive-transactions`` of them (spread over the producers), extrapolated.

Transactions are generated, signed and written to files before any clock
starts: they are the field devices' work. Every run is then checked against a
replay of the transactions: each producer applied through its last sequence,
every transaction applied exactly once, none parked, quarantined or rejected,
and every record with the expected fields and version.
Results also go to bench/results/sync.json.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import requests

from bench.api.servers import REPO_ROOT, BenchError, database_urls, temp_directory
from bench.common import bounded_int
from bench.sync import modes
from bench.sync.server import (
    applied_through,
    check_state,
    close_app,
    database_state,
    register_producers,
    server_app,
    serving,
)
from bench.sync.workload import (
    bundles_of,
    expected_state,
    producer_name,
    producer_transactions,
    split,
)
from sync.wire.bundles import make_bundle, write_bundle_file
from sync.wire.signing import new_credential, public_key_of

DATABASES = ("sqlite", "postgresql")
RESULTS_PATH = REPO_ROOT / "bench" / "results" / "sync.json"
TARGET_TPS = 5000
BUNDLE_SIZE = 1000
PUSH = "REST push"
IMPORT = "file import"
NAIVE = "naive apply"
PROFILE_LINES = 25


def databases(text: str) -> list[str]:
    """An argparse type: a comma-separated list drawn from DATABASES."""
    values = [part.strip() for part in text.split(",") if part.strip()]
    if not values or not set(values) <= set(DATABASES):
        raise argparse.ArgumentTypeError(f"choose from {','.join(DATABASES)}")
    return list(dict.fromkeys(values))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sync",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--transactions", type=bounded_int(1, 10_000_000), default=100_000
    )
    parser.add_argument("--producers", type=bounded_int(1, 100), default=10)
    parser.add_argument(
        "--databases",
        type=databases,
        default=list(DATABASES),
        help="comma-separated: sqlite,postgresql (default: both)",
    )
    parser.add_argument(
        "--workers", type=bounded_int(1, 64), default=4, help="gunicorn workers"
    )
    parser.add_argument(
        "--bundle-size",
        type=bounded_int(1, BUNDLE_SIZE),
        default=BUNDLE_SIZE,
        help="transactions per pushed bundle (the server takes at most 1000)",
    )
    parser.add_argument(
        "--naive-transactions",
        type=bounded_int(1, 10_000_000),
        default=10_000,
        help="how many the naive apply runs on before extrapolating (default 10000)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the file import with cProfile and print where time goes",
    )
    args = parser.parse_args(argv)
    if args.transactions < args.producers:
        parser.error("--transactions must be at least --producers")
    args.naive_transactions = max(
        args.producers, min(args.naive_transactions, args.transactions)
    )
    return args


def say(text: str = "") -> None:
    print(text, flush=True)


def uptime() -> str:
    """The ``uptime`` line: how loaded the machine is."""
    try:
        done = subprocess.run(
            ["uptime"], capture_output=True, text=True, timeout=5, check=False
        )
        return done.stdout.strip()
    except OSError:
        load = os.getloadavg()
        return f"load average: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}"


class Workload:
    """Every producer's transactions, credentials, bundles and files."""

    def __init__(self, args: argparse.Namespace, directory: Path) -> None:
        counts = split(args.transactions, args.producers)
        self.names = [producer_name(index) for index in range(args.producers)]
        self.credentials = {name: new_credential() for name in self.names}
        self.public_keys = {
            name: public_key_of(credential)
            for name, credential in self.credentials.items()
        }
        self.streams = [
            producer_transactions(index, count, args.seed)
            for index, count in enumerate(counts)
        ]
        self.total = args.transactions
        self.expected = expected_state(self.streams)
        self.bundles = {
            name: bundles_of(stream, self.credentials[name], args.bundle_size)
            for name, stream in zip(self.names, self.streams, strict=True)
        }
        self.files = []
        for name, stream in zip(self.names, self.streams, strict=True):
            path = directory / f"{name}.jsonl.gz"
            with path.open("wb") as out:
                write_bundle_file(make_bundle(stream, self.credentials[name]), out)
            self.files.append(path)
        subset = split(args.naive_transactions, args.producers)
        self.naive_streams = [
            stream[:count] for stream, count in zip(self.streams, subset, strict=True)
        ]
        self.naive_total = sum(subset)
        self.naive_expected = expected_state(self.naive_streams)


def fresh_app(
    make_url: Callable[[str], str], name: str, workdir: Path, workload: Workload
):
    """A new database NAME with tables and registered producers; answer (url, app)."""
    url = make_url(name)
    app = server_app(url, workdir / f"{name}-instance")
    register_producers(app, workload.public_keys)
    return url, app


def result_row(
    database: str,
    mode: str,
    transactions: int,
    meter: modes.Meter,
    problems: list[str],
    measured: int | None = None,
    **details: Any,
) -> dict[str, Any]:
    measured = transactions if measured is None else measured
    seconds = meter.seconds * transactions / measured
    return {
        "database": database,
        "mode": mode,
        "transactions": transactions,
        "measured_transactions": measured,
        "extrapolated": measured != transactions,
        "seconds": round(seconds, 3),
        "tx_per_s": round(transactions / seconds, 1),
        **meter.as_dict(),
        "measured_seconds": round(meter.seconds, 3),
        "problems": problems,
        **details,
    }


def bench_push(
    database: str,
    make_url: Callable[[str], str],
    workdir: Path,
    workload: Workload,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Push every bundle over HTTP to gunicorn; time until all is applied."""
    url, app = fresh_app(make_url, "bench_sync_push", workdir, workload)
    close_app(app)
    run_dir = workdir / f"{database}-push"
    run_dir.mkdir()
    with serving(url, run_dir / "instance", run_dir, args.workers) as server:
        base = f"http://127.0.0.1:{server.port}"
        for _ in range(4 * args.workers):  # let every worker boot and connect
            requests.get(f"{base}/api/openapi.json", timeout=30)
        server_cpu = modes.group_cpu_seconds(server.process.pid)
        with modes.Meter() as meter:
            pushed = modes.push_all(base, workload.bundles)
            http_done = time.perf_counter() - pushed["started"]
            behind = {
                producer: cursor
                for producer, cursor in applied_through(app).items()
                if cursor != workload.expected.through[producer]
            }
            caught_up = modes.catch_up(app) if behind else None
        server_cpu = modes.group_cpu_seconds(server.process.pid) - server_cpu
    state = database_state(app)
    close_app(app)
    problems = check_state(state, workload.expected)
    outcomes = pushed["producers"]
    problems += [f"{p}: {o.error}" for p, o in outcomes.items() if o.error]
    return result_row(
        database,
        PUSH,
        workload.total,
        meter,
        problems,
        http_seconds=round(http_done, 3),
        first_producer_done_s=round(pushed["first_done_s"], 3),
        last_producer_done_s=round(pushed["last_done_s"], 3),
        behind_after_pushes=behind,
        catch_up=caught_up,
        bundles=sum(o.bundles for o in outcomes.values()),
        posts=sum(o.posts for o in outcomes.values()),
        not_ok=sorted(s for o in outcomes.values() for s in o.not_ok),
        parked_in_replies=sum(o.parked for o in outcomes.values()),
        gunicorn_workers=args.workers,
        gunicorn_cpu_s=round(server_cpu, 2),
        statuses=state["statuses"],
    )


def bench_import(
    database: str,
    make_url: Callable[[str], str],
    workdir: Path,
    workload: Workload,
    args: argparse.Namespace,
) -> tuple[dict[str, Any], str]:
    """Import every producer's file in turn; answer the row and any profile."""
    _, app = fresh_app(make_url, "bench_sync_import", workdir, workload)
    profiler = cProfile.Profile() if args.profile else None
    with modes.Meter() as meter:
        if profiler:
            profiler.enable()
        replies = modes.import_files(app, workload.files)
        if profiler:
            profiler.disable()
    state = database_state(app)
    close_app(app)
    problems = check_state(state, workload.expected)
    report = ""
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(PROFILE_LINES)
        stats.sort_stats("cumulative").print_stats(PROFILE_LINES)
        report = out.getvalue()
    row = result_row(
        database,
        IMPORT,
        workload.total,
        meter,
        problems,
        files=len(replies),
        profiled=bool(profiler),
        parked_in_replies=sum(r["parked"] for r in replies),
        statuses=state["statuses"],
    )
    return row, report


def bench_naive(
    database: str,
    make_url: Callable[[str], str],
    workdir: Path,
    workload: Workload,
) -> dict[str, Any]:
    """Apply the subset one transaction per commit; extrapolate to all."""
    _, app = fresh_app(make_url, "bench_sync_naive", workdir, workload)
    with modes.Meter() as meter:
        modes.naive_apply(app, workload.naive_streams)
    state = database_state(app, incoming=False)
    close_app(app)
    problems = check_state(state, workload.naive_expected, incoming=False)
    return result_row(
        database,
        NAIVE,
        workload.total,
        meter,
        problems,
        measured=workload.naive_total,
    )


def bench_database(
    database: str, workdir: Path, workload: Workload, args: argparse.Namespace
) -> tuple[list[dict[str, Any]], str]:
    """The three modes on fresh databases of one kind."""
    rows: list[dict[str, Any]] = []
    profile = ""
    with database_urls(database, workdir) as make_url:
        say(f"{database}: REST push ...")
        rows.append(bench_push(database, make_url, workdir, workload, args))
        say(f"{database}: file import ...")
        row, profile = bench_import(database, make_url, workdir, workload, args)
        rows.append(row)
        say(f"{database}: naive apply of {workload.naive_total:,} ...")
        rows.append(bench_naive(database, make_url, workdir, workload))
    naive = rows[-1]["tx_per_s"]
    for row in rows:
        row["ratio_vs_naive"] = round(row["tx_per_s"] / naive, 2)
    say(f"{database}: done; {uptime()}")
    return rows, profile


def print_table(rows: list[dict[str, Any]], workload: Workload) -> None:
    say(
        f"{'database':<11} {'mode':<12} {'transactions':>12} {'seconds':>9}"
        f" {'tx/s':>9} {'vs naive':>9} {'CPU busy':>9} {'load':>5}  check"
    )
    for row in rows:
        mark = "*" if row["extrapolated"] else " "
        verdict = "ok" if not row["problems"] else "FAILED"
        say(
            f"{row['database']:<11} {row['mode']:<12} {row['transactions']:>11,}{mark}"
            f" {row['seconds']:>9.2f} {row['tx_per_s']:>9,.0f}"
            f" {row['ratio_vs_naive']:>8.1f}x {row['cpu_busy_pct']:>8.0f}%"
            f" {row['load_1min_at_end']:>5.1f}  {verdict}"
        )
    say(
        "CPU busy: the whole machine's, while measured (other processes too);"
        " load: 1-minute load average at the end"
    )
    say(
        "sqlite: a WAL file with the app's pragmas (synchronous FULL, an fsync per"
        " commit); postgresql: the test suite's throwaway cluster (fsync=off,"
        " synchronous_commit=off), which flatters the commit-per-transaction"
        " naive apply"
    )
    if any(row.get("profiled") for row in rows):
        say("file import ran under cProfile: its time is inflated")
    if any(row["extrapolated"] for row in rows):
        say(
            f"* naive apply measured on {workload.naive_total:,} transactions"
            f" (the first of each producer), time extrapolated to {workload.total:,}"
        )


def print_details(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        where = f"{row['database']} {row['mode']}"
        for problem in row["problems"]:
            say(f"{where}: PROBLEM: {problem}")
        if row["mode"] == PUSH:
            extra = (
                f"caught up by apply_all: {row['catch_up']}"
                if row["catch_up"]
                else "all applied by the pushes themselves"
            )
            say(
                f"{where}: {row['bundles']} bundles in {row['posts']} posts"
                f" (not 200: {row['not_ok'] or 'none'}); first producer done at"
                f" {row['first_producer_done_s']:.2f} s, last at"
                f" {row['last_producer_done_s']:.2f} s; {extra}"
            )
            say(
                f"{where}: CPU: gunicorn {row['gunicorn_cpu_s']:.1f} s"
                f" ({1e6 * row['gunicorn_cpu_s'] / row['transactions']:.0f} µs/tx),"
                f" pushing threads {row['this_process_cpu_s']:.1f} s"
                " (the database server's own CPU not counted)"
            )
        if row["mode"] == IMPORT:
            say(
                f"{where}: CPU: this process {row['this_process_cpu_s']:.1f} s"
                f" ({1e6 * row['this_process_cpu_s'] / row['transactions']:.0f}"
                " µs/tx)"
            )
        if row["mode"] in (PUSH, IMPORT):
            say(f"{where}: final statuses {row['statuses']}")


def metadata(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "uptime_before": uptime(),
        "settings": {k: v for k, v in vars(args).items() if k != "profile"},
    }


def _exit_on_sigterm(_signum: int, _frame: Any) -> NoReturn:
    """Turn SIGTERM into SystemExit so every cleanup block runs."""
    raise SystemExit(143)


def main(argv: list[str] | None = None) -> None:
    """Run every database and mode, print the table and write the JSON results."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    meta = metadata(args)
    say(
        f"Sync benchmark: {args.transactions:,} transactions from {args.producers}"
        f" producers ({meta['cpus']} CPUs, Python {meta['python']})"
    )
    say(f"before: {meta['uptime_before']}")
    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    profiles: dict[str, str] = {}
    with temp_directory() as workdir:
        started = time.perf_counter()
        workload = Workload(args, workdir)
        meta["preparation_seconds"] = round(time.perf_counter() - started, 1)
        meta["actions"] = workload.expected.actions
        meta["final_records"] = len(workload.expected.records)
        say(
            f"generated, signed and wrote the transactions in"
            f" {meta['preparation_seconds']} s: "
            + ", ".join(
                f"{k} {v:,}" for k, v in sorted(workload.expected.actions.items())
            )
        )
        for database in args.databases:
            try:
                found, profile = bench_database(database, workdir, workload, args)
            except BenchError as exc:
                failed.append(f"{database}: {exc}")
                say(f"{database}: {exc}")
                continue
            rows += found
            if profile:
                profiles[database] = profile
    meta["uptime_after"] = uptime()
    say()
    print_table(rows, workload)
    print_details(rows)
    for database, profile in profiles.items():
        say()
        say(f"Profile of the {database} file import:")
        say(profile)
    ours = [row for row in rows if row["mode"] != NAIVE]
    below = [row for row in ours if row["tx_per_s"] < TARGET_TPS]
    say()
    say(
        f"target {TARGET_TPS:,} tx/s end to end: "
        + (
            "met by every mode"
            if ours and not below
            else "NOT met by "
            + ", ".join(f"{r['database']} {r['mode']}" for r in below)
        )
    )
    say(f"after: {meta['uptime_after']}")
    for problem in failed:
        say(f"failed: {problem}")
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(
        json.dumps({"meta": meta, "results": rows, "failed": failed}, indent=2) + "\n"
    )
    say(f"results in {RESULTS_PATH.relative_to(REPO_ROOT)}")
    if failed or any(row["problems"] for row in rows):
        sys.exit(1)

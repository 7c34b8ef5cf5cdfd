"""Benchmark the registry API under gunicorn as shipped, against gunicorn's defaults
and the naive development server.

For each database and server, a fresh database is migrated, the app is served on
127.0.0.1, and at each client count a fixed number of registrations (POST, expect 201)
then look-ups of the registered uuids (GET, expect 200) are sent and timed.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from bench.api import load, report
from bench.api.servers import (
    REPO_ROOT,
    SERVER_KINDS,
    BenchError,
    Databases,
    app_environment,
    database_urls,
    log_tail,
    migrate,
    serving,
    temp_directory,
    tree_cpu_seconds,
)

DATABASES = ("sqlite", "postgresql")
DEFAULT_REQUESTS = 3000
QUICK_REQUESTS = 150
RESULTS_PATH = REPO_ROOT / "bench" / "results" / "api.json"
MISSING_UUID = "00000000-0000-4000-8000-000000000000"
BUSY_WARNING_PCT = 20.0


def _csv(kind: type, choices: tuple[str, ...] | None = None) -> Callable[[str], list]:
    """Return an argparse type that reads a comma-separated list."""

    def parse(text: str) -> list:
        try:
            values = [kind(part.strip()) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a list of {kind.__name__}") from None
        if not values:
            raise argparse.ArgumentTypeError("empty list")
        if choices and not set(values) <= set(choices):
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)}")
        if kind is int and min(values) < 1:
            raise argparse.ArgumentTypeError("counts must be at least 1")
        return list(dict.fromkeys(values))

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.api",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--databases",
        type=_csv(str, DATABASES),
        default=list(DATABASES),
        help="comma-separated: sqlite,postgresql (default: both)",
    )
    parser.add_argument(
        "--clients",
        type=_csv(int),
        default=[1, 10, 50],
        help="comma-separated concurrency levels (default: 1,10,50)",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=None,
        help=f"requests per level, one third registrations, two thirds look-ups "
        f"(default: {DEFAULT_REQUESTS}; {QUICK_REQUESTS} with --quick)",
    )
    parser.add_argument(
        "--servers",
        type=_csv(str, SERVER_KINDS),
        default=list(SERVER_KINDS),
        help="comma-separated: gunicorn (as shipped), sync (gunicorn's defaults), "
        "naive (development server); default: all",
    )
    parser.add_argument(
        "--workers", type=int, default=4, help="gunicorn workers (default: 4)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small counts for a smoke run"
    )
    options = parser.parse_args(argv)
    if options.requests is None:
        options.requests = QUICK_REQUESTS if options.quick else DEFAULT_REQUESTS
    if options.requests < 3:
        parser.error("--requests must be at least 3")
    if options.workers < 1:
        parser.error("--workers must be at least 1")
    return options


def progress(message: str) -> None:
    """Say what is happening on stderr, keeping stdout for the results."""
    print(message, file=sys.stderr, flush=True)


def cpu_times() -> tuple[int, int, int] | None:
    """Return (all, idle, stolen) machine CPU time from /proc/stat; None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(n) for n in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    if len(fields) < 8:
        return None
    return sum(fields), fields[3] + fields[4], fields[7]


def cpu_shares(
    before: tuple[int, int, int] | None, after: tuple[int, int, int] | None
) -> dict[str, float]:
    """Percent of machine CPU busy, and taken by the hypervisor, between readings."""
    if before is None or after is None or after[0] == before[0]:
        return {"cpu_busy_pct": math.nan, "cpu_steal_pct": math.nan}
    total = after[0] - before[0]
    return {
        "cpu_busy_pct": round(100 - 100 * (after[1] - before[1]) / total, 1),
        "cpu_steal_pct": round(100 * (after[2] - before[2]) / total, 1),
    }


def measure(
    port: int,
    job: load.Job,
    total: int,
    clients: int,
    expect: int,
    stop: threading.Event,
    keep_uuids: bool = False,
    server_pids: tuple[int, ...] = (),
) -> tuple[load.Measurement, dict[str, float]]:
    """Run one phase; also answer machine CPU use, the load generator's share,
    and the CPU milliseconds per request of the load generator and of the
    server's processes (web and database): on a shared machine these say what
    the phase costs, whatever else runs."""
    before, own_before = cpu_times(), _own_cpu_seconds()
    server_before = sum(tree_cpu_seconds(pid) for pid in server_pids)
    measured = load.run_phase(port, job, total, clients, expect, stop, keep_uuids)
    own = _own_cpu_seconds() - own_before
    server = sum(tree_cpu_seconds(pid) for pid in server_pids) - server_before
    cpus = os.cpu_count() or 1
    done = max(measured.requests, 1)
    client_ms, server_ms = 1000 * own / done, 1000 * server / done
    return measured, {
        **cpu_shares(before, cpu_times()),
        "client_cpu_pct": round(100 * own / max(measured.seconds, 1e-9) / cpus, 1),
        "client_cpu_ms_per_req": round(client_ms, 3),
        "server_cpu_ms_per_req": round(server_ms, 3),
        # What the machine's cores would serve if the phase had them to itself.
        "cpu_bound_req_per_s": round(1000 * cpus / (client_ms + server_ms), 1)
        if client_ms + server_ms
        else math.nan,
    }


def _own_cpu_seconds() -> float:
    """CPU time this process (the load generator) has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def row(
    db: str,
    server: str,
    op: str,
    clients: int,
    measured: load.Measurement,
    cpu: dict[str, float],
) -> dict[str, Any]:
    """Summarise one measured phase."""
    return {
        "db": db,
        "server": server,
        "op": op,
        "clients": clients,
        "requests": measured.requests,
        "seconds": round(measured.seconds, 3),
        "req_per_s": round(measured.throughput, 1),
        "p50_ms": round(measured.percentile_ms(0.50), 2),
        "p99_ms": round(measured.percentile_ms(0.99), 2),
        "errors": sum(measured.errors.values()),
        "error_kinds": dict(measured.errors),
        **cpu,
    }


def warm_up(port: int, workers: int, stop: threading.Event) -> None:
    """Send a few untimed look-ups so every worker has loaded and connected."""
    load.run_phase(
        port, load.lookup_job([MISSING_UUID]), 8 * workers, workers, 404, stop
    )


def bench_level(
    db: str,
    server: str,
    port: int,
    clients: int,
    options: argparse.Namespace,
    first_site: int,
    server_pids: tuple[int, ...] = (),
) -> list[dict[str, Any]]:
    """Measure registrations, then look-ups of what was registered, at one level."""
    registrations = options.requests // 3
    lookups = options.requests - registrations
    registered, cpu = measure(
        port,
        load.registration_job(first_site),
        registrations,
        clients,
        201,
        options.stop,
        keep_uuids=True,
        server_pids=server_pids,
    )
    rows = [row(db, server, "register", clients, registered, cpu)]
    uuids = registered.uuids or [MISSING_UUID]
    looked_up, cpu = measure(
        port,
        load.lookup_job(uuids),
        lookups,
        clients,
        200,
        options.stop,
        server_pids=server_pids,
    )
    rows.append(row(db, server, "get", clients, looked_up, cpu))
    for done in rows:
        progress(
            f"  {db:<10} {server:<8} {done['op']:<8} clients={clients:<3} "
            f"{done['req_per_s']:>8.1f} req/s  errors={done['errors']}  CPU/req "
            f"server {done['server_cpu_ms_per_req']:.2f} ms, "
            f"client {done['client_cpu_ms_per_req']:.2f} ms"
        )
    return rows


def bench_server(
    db: str,
    server: str,
    make_url: Databases,
    workdir: Path,
    options: argparse.Namespace,
) -> list[dict[str, Any]]:
    """Serve a fresh database with one server kind and measure every level."""
    run_dir = workdir / f"{db}-{server}"
    run_dir.mkdir()
    env = app_environment(make_url(f"bench_{server}"), run_dir / "instance")
    migrate(env, run_dir)
    rows: list[dict[str, Any]] = []
    with serving(server, env, run_dir, options.workers) as running:
        progress(f"{db}: {server} serving on 127.0.0.1:{running.port}")
        warm_up(running.port, 1 if server == "naive" else options.workers, options.stop)
        for level, clients in enumerate(options.clients):
            first_site = level * options.requests
            pids = (running.process.pid, make_url.server_pid)
            rows += bench_level(
                db,
                server,
                running.port,
                clients,
                options,
                first_site,
                tuple(pid for pid in pids if pid is not None),
            )
        if any(r["errors"] for r in rows):
            tail = log_tail(running.log)
            for r in rows:
                r["server_log_tail"] = tail
    return rows


def bench_database(
    db: str, workdir: Path, options: argparse.Namespace
) -> tuple[list, list[str]]:
    """Measure both server kinds on one kind of database."""
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    progress(f"{db}: setting up")
    try:
        with database_urls(db, workdir) as make_url:
            for server in options.servers:
                try:
                    rows += bench_server(db, server, make_url, workdir, options)
                except BenchError as exc:
                    problems.append(f"{db} {server}: {exc}")
                    progress(f"{db} {server}: {exc}")
    except BenchError as exc:
        problems.append(f"{db}: {exc}")
        progress(f"{db}: {exc}")
    return rows, problems


def metadata(options: argparse.Namespace) -> dict[str, Any]:
    """Describe the run so its figures can be compared later."""
    return {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "databases": options.databases,
        "clients": options.clients,
        "requests_per_level": options.requests,
        "registrations_per_level": options.requests // 3,
        "lookups_per_level": options.requests - options.requests // 3,
        "gunicorn_workers": options.workers,
        "servers": {
            "gunicorn": "gunicorn -c gunicorn.conf.py (as shipped)",
            "sync": "gunicorn's defaults: sync workers, no access log",
            "naive": "werkzeug run_simple(threaded=False)",
        },
        "load_generator": "threads speaking HTTP/1.1 over plain sockets on the "
        "same host, keeping connections alive while the server does",
    }


def background_load() -> float:
    """Measure how busy the machine is for a second before the run starts."""
    before = cpu_times()
    time.sleep(1)
    busy = cpu_shares(before, cpu_times())["cpu_busy_pct"]
    if busy > BUSY_WARNING_PCT:
        progress(f"warning: the machine is {busy:.0f}% busy already; expect noise")
    return busy


def _exit_on_sigterm(_signum: int, _frame: Any) -> NoReturn:
    """Turn SIGTERM into SystemExit so every cleanup block runs."""
    raise SystemExit(143)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the tables and write bench/results/api.json."""
    options = parse_args(argv)
    options.stop = threading.Event()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    meta = metadata(options)
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    try:
        meta["cpu_busy_pct_before_run"] = background_load()
        with temp_directory() as workdir:
            for db in options.databases:
                found, failed = bench_database(db, workdir, options)
                rows += found
                problems += failed
    except KeyboardInterrupt:
        options.stop.set()
        progress("interrupted; servers and temporary files cleaned up")
        raise SystemExit(130) from None
    paired = report.ratios(rows)
    out = sys.stdout
    print(file=out)
    report.print_results(rows, out)
    print(file=out)
    report.print_ratios(paired, out)
    report.print_errors(rows, out)
    print(file=out)
    for line in report.goals(rows):
        print(line, file=out)
    for problem in problems:
        print(f"failed: {problem}", file=out)
    document = {"meta": meta, "results": rows, "ratios": paired, "failed": problems}
    report.write_json(RESULTS_PATH, document)
    print(f"\nresults written to {RESULTS_PATH.relative_to(REPO_ROOT)}", file=out)
    if problems:
        raise SystemExit(1)

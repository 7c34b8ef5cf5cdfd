"""Benchmark the crawler against a loopback fleet of fake instances.

A separate process (more if the open-files limit requires) serves N fake instances
on 127.1.x.y, one port, each answering /system-info and /stats with small JSON
after 10-60 ms (and /metrics with the same numbers as text); a few hang. Then,
each in its own process: (a) the crawl engine alone, (b) crawl_chunk into SQLite
as one worker does, twice (the second crawl starts with the slow hosts, as every
later one does), (c) the same split over several worker processes at once, the
floor (plain aiohttp fetching both endpoints, nothing stored), and a naive
sequential requests.get baseline on a sample without hanging hosts, extrapolated
to N (hanging hosts added as timeout x endpoints each). Each mode's CPU per fetch
(its CPU time over N x endpoints) and peak RSS are reported.

When the prometheus binary is installed (scripts/install-services installs
Debian's package; nothing is downloaded), Prometheus scrapes every answering
instance's /metrics for comparison: its CPU per scrape over a few intervals in
the steady state, and its peak RSS. The pipeline's goals against both are
printed as ratios. Results also go to bench/results/crawl.json.

With --fault: crawl runs on Celery as in production (PostgreSQL, Redis, two
workers and a beat of their own), N = 10,000 by default: one run without a
fault, then one whose first worker is killed with SIGKILL a third of the way
through; their wall times side by side, and their counts, which must be exact.
Results go to bench/results/crawl-fault.json.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from bench.common import bounded_int
from bench.crawl import faults, modes, peers, report
from bench.crawl.children import ChildError, make_barrier, run_children
from bench.crawl.fleet import FleetError, FleetProcesses, start_fleet
from bench.crawl.plan import (
    ENDPOINTS,
    FD_MARGIN,
    MAX_INSTANCES,
    Plan,
    crawler_files_needed,
    fleet_shard_size,
    raise_open_files_limit,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_PATH = REPO_ROOT / "bench" / "results" / "crawl.json"
FAULT_RESULTS_PATH = REPO_ROOT / "bench" / "results" / "crawl-fault.json"
DEFAULT_INSTANCES = 2000
DEFAULT_FAULT_INSTANCES = 10_000
CONNECT_TIMEOUT = 2.0
DEFAULT_CONCURRENCY = 200
SETUP_SECONDS = 300.0
SECONDS_PER_INSTANCE_BOUND = 0.1
BUSY_LOAD = 0.5
# Descriptors a crawling process may use beyond its concurrent connections.
SPARE_FDS = 64


def _positive_float(text: str) -> float:
    """An argparse type for a float above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number") from None
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError("must be above 0 and at most 600")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.crawl",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--instances",
        type=bounded_int(1, MAX_INSTANCES),
        default=None,
        help=f"fake instances in the fleet (default: {DEFAULT_INSTANCES}; "
        f"{DEFAULT_FAULT_INSTANCES} with --fault)",
    )
    parser.add_argument(
        "--fault",
        action="store_true",
        help="the fault mode: Celery runs on PostgreSQL and Redis, without a "
        "fault and with a worker killed mid-run (needs --workers 2 or more)",
    )
    parser.add_argument(
        "--hanging",
        type=bounded_int(0, MAX_INSTANCES),
        default=5,
        help="instances that never answer (default: 5)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=5.0,
        help="crawl timeout per instance, seconds (default: 5)",
    )
    parser.add_argument(
        "--concurrency",
        type=bounded_int(1, 5000),
        default=DEFAULT_CONCURRENCY,
        help=f"instances crawled at once per process (default: {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--workers",
        type=bounded_int(0, 16),
        default=2,
        help="worker processes for the fan-out mode (default: 2; 0 skips it)",
    )
    parser.add_argument(
        "--naive-sample",
        type=bounded_int(0, MAX_INSTANCES),
        default=200,
        help="instances crawled sequentially for the baseline (default: 200; 0 "
        "skips it)",
    )
    parser.add_argument(
        "--prometheus-interval",
        type=_positive_float,
        default=15.0,
        help="Prometheus's scrape interval in the comparison, seconds (default: 15)",
    )
    parser.add_argument(
        "--prometheus-rounds",
        type=bounded_int(1, 20),
        default=2,
        help="scrape intervals Prometheus is measured over (default: 2)",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of latencies and hanging hosts"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="JSON results file (default: bench/results/crawl.json, or "
        "crawl-fault.json with --fault)",
    )
    args = parser.parse_args(argv)
    if args.instances is None:
        args.instances = DEFAULT_FAULT_INSTANCES if args.fault else DEFAULT_INSTANCES
    if args.output is None:
        args.output = FAULT_RESULTS_PATH if args.fault else RESULTS_PATH
    if args.fault and args.workers < 2:
        parser.error("--fault needs --workers 2 or more (one is killed)")
    if args.hanging > args.instances:
        parser.error("--hanging cannot exceed --instances")
    args.naive_sample = min(args.naive_sample, args.instances - args.hanging)
    args.workers = min(args.workers, args.instances)
    return args


def fail(message: str) -> NoReturn:
    """Exit with a one-line message."""
    print(f"bench.crawl: {message}", file=sys.stderr)
    sys.exit(2)


def check_open_files(args: argparse.Namespace) -> int:
    """Raise the open-files soft limit as needed; exit if N cannot fit."""
    needed = crawler_files_needed(args.instances, args.concurrency)
    soft, hard = raise_open_files_limit(2 * args.instances + FD_MARGIN)
    if soft < needed or fleet_shard_size(args.instances, soft) < 1:
        fail(
            f"{args.instances} instances need about {needed} open files in the "
            f"crawling process but the limit is {soft} (hard limit {hard}); lower "
            "--instances or raise the hard limit (ulimit -Hn)"
        )
    return soft


def progress(message: str) -> None:
    """Say what is happening, on stderr."""
    print(f"... {message}", file=sys.stderr, flush=True)


def row(label: str, result: dict[str, Any], instances: int) -> dict[str, Any]:
    """A table row from a mode's result."""
    wall = result["wall_s"]
    return {
        **result,
        "label": label,
        "rate": instances / wall if wall > 0 else 0.0,
    }


def measured(
    fleet: FleetProcesses,
    calls: list[tuple[Callable[..., dict], tuple]],
    timeout: float,
) -> tuple[list[dict[str, Any]], float]:
    """Run ``calls`` in child processes; return results and the fleet's CPU use."""
    before = fleet.usage()["cpu_s"]
    results = run_children(calls, timeout)
    return results, fleet.usage()["cpu_s"] - before


def crawl_bound(instances: int) -> float:
    """How long any crawl mode may take before it is stopped."""
    return SETUP_SECONDS + instances * SECONDS_PER_INSTANCE_BOUND


def run_engine(
    plan: Plan, fleet: FleetProcesses, options: modes.Options
) -> dict[str, Any]:
    """Mode (a): iterate crawl() over the fleet."""
    progress("(a) engine: crawl() over the whole fleet")
    call = (modes.run_engine, (plan, fleet.port, options))
    [result], fleet_cpu = measured(fleet, [call], crawl_bound(plan.instances))
    label = "(a) engine: crawl()"
    return row(label, {**result, "fleet_cpu_s": fleet_cpu}, plan.instances)


def run_pipeline(
    plan: Plan, fleet: FleetProcesses, options: modes.Options, workdir: Path
) -> dict[str, Any]:
    """Mode (b): one crawl_chunk over every instance, into SQLite."""
    progress("(b) pipeline: crawl_chunk into SQLite, one process")
    call = (modes.run_pipeline, (workdir, plan, fleet.port, options))
    [result], fleet_cpu = measured(fleet, [call], 2 * crawl_bound(plan.instances))
    label = "(b) pipeline: crawl_chunk, 1 worker"
    second = result.pop("second")
    # Both crawls ran in one process: its peak covers both.
    second.update(peak_rss_mib=result["peak_rss_mib"], peak_fds=result["peak_fds"])
    return [
        row(label, {**result, "fleet_cpu_s": fleet_cpu}, plan.instances),
        row(f"{label}, 2nd crawl", {**second, "crawls": 2}, plan.instances),
    ]


def run_floor(
    plan: Plan, fleet: FleetProcesses, options: modes.Options
) -> dict[str, Any]:
    """The floor: plain aiohttp over the fleet, nothing stored."""
    progress("floor: plain aiohttp, both endpoints of every instance, no database")
    call = (peers.run_floor, (plan, fleet.port, options))
    [result], fleet_cpu = measured(fleet, [call], crawl_bound(plan.instances))
    label = "floor: plain aiohttp, no database"
    return row(label, {**result, "fleet_cpu_s": fleet_cpu}, plan.instances)


def run_prometheus(
    plan: Plan, fleet: FleetProcesses, options: modes.Options, args
) -> dict[str, Any] | None:
    """Prometheus scraping the same fleet, when it is installed."""
    if shutil.which(peers.PROMETHEUS) is None:
        progress(peers.INSTALL_HINT)
        return None
    progress(
        f"Prometheus: scraping every answering instance each "
        f"{args.prometheus_interval:g} s, measured over {args.prometheus_rounds} "
        "intervals"
    )
    return peers.run_prometheus(
        plan, fleet.port, options, args.prometheus_interval, args.prometheus_rounds
    )


def run_fan_out(
    plan: Plan,
    fleet: FleetProcesses,
    options: modes.Options,
    workdir: Path,
    workers: int,
) -> dict[str, Any]:
    """Mode (c): the ids split over worker processes crawling concurrently."""
    progress(f"(c) fan-out: crawl_chunk in {workers} processes, one SQLite database")
    bound = crawl_bound(plan.instances)
    [prepared] = run_children(
        [(modes.prepare, (workdir, plan, fleet.port, options))], bound
    )
    ids, operation_id = prepared["ids"], prepared["operation_id"]
    size = math.ceil(len(ids) / workers)
    barrier = make_barrier(workers)
    calls = [
        (modes.run_chunk, (workdir, options, ids[i : i + size], operation_id, barrier))
        for i in range(0, len(ids), size)
    ]
    results, fleet_cpu = measured(fleet, calls, bound)
    [database] = run_children(
        [(modes.finish_and_check, (workdir, options, operation_id))], bound
    )
    combined = {
        "wall_s": max(r["ended"] for r in results) - min(r["began"] for r in results),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in results),
        "cpu_s": sum(r["cpu_s"] for r in results),
        "fleet_cpu_s": fleet_cpu,
        "peak_fds": max(r["peak_fds"] for r in results),
        "up": sum(r["up"] for r in results),
        "down": sum(r["down"] for r in results),
        "skipped": sum(r["skipped"] for r in results),
        "workers": results,
        "database": database,
    }
    label = f"(c) fan-out: crawl_chunk, {len(calls)} workers"
    return row(label, combined, plan.instances)


def run_naive(
    plan: Plan, fleet: FleetProcesses, args: argparse.Namespace
) -> dict[str, Any]:
    """The sequential baseline on a sample without hanging hosts, extrapolated."""
    progress(f"naive: {args.naive_sample} instances, one requests.get at a time")
    hanging = plan.hanging_indexes()
    urls = modes.loopback_urls(plan, fleet.port)
    sample = [u for i, u in enumerate(urls) if i not in hanging][: args.naive_sample]
    bound = SETUP_SECONDS + len(sample) * len(ENDPOINTS) * (args.timeout + 1)
    [result] = run_children([(modes.run_naive, (sample, args.timeout))], bound)
    per_instance = result["wall_s"] / len(sample)
    answering = plan.instances - plan.hanging
    hanging_seconds = plan.hanging * args.timeout * len(ENDPOINTS)
    return {
        **result,
        "sample": len(sample),
        "rate": len(sample) / result["wall_s"],
        "extrapolated_s": per_instance * answering + hanging_seconds,
        "hanging_added_s": hanging_seconds,
        "hanging_method": "analytic: hanging hosts x timeout x endpoints",
    }


def check_counts(mode: dict[str, Any], plan: Plan, warnings: list[str]) -> None:
    """Warn unless up == N - hanging and down == hanging (and what was stored)."""
    up, down = plan.instances - plan.hanging, plan.hanging
    if (mode["up"], mode["down"], mode["skipped"]) != (up, down, 0):
        errors = mode.get("errors") or {}
        warnings.append(
            f"{mode['label']}: up {mode['up']} down {mode['down']} skipped "
            f"{mode['skipped']}, expected up {up} down {down}; errors: {errors}"
        )
    database = mode.get("database")
    if database is None:
        return
    health, operation = database["health"], database["operation"]
    stored = (health.get("up", 0), health.get("down", 0), database["history_rows"])
    if stored != (up, down, plan.instances * mode.get("crawls", 1)):
        warnings.append(
            f"{mode['label']}: stored health {health}, {database['history_rows']} "
            f"history rows; expected up {up} down {down}, {plan.instances} rows"
        )
    daily = database.get("daily_value_rows")
    if daily is not None and daily != up:
        warnings.append(
            f"{mode['label']}: {daily} daily value rows, expected {up} (one per up "
            "instance for the charted field)"
        )
    if (operation["status"], operation["done"], operation["failed"]) != (
        "finished",
        up,
        down,
    ):
        warnings.append(f"{mode['label']}: operation ended as {operation}")


def check_descriptors(
    mode: dict[str, Any], concurrency: int, warnings: list[str]
) -> None:
    """Warn when a crawling process held far more sockets than its concurrency."""
    if mode["peak_fds"] > 2 * concurrency + SPARE_FDS:
        warnings.append(
            f"{mode['label']}: up to {mode['peak_fds']} open descriptors in one "
            f"process for concurrency {concurrency}: finished hosts' connections "
            "stay open (keep-alive), so a process needs about one per instance"
        )


def measure(
    args: argparse.Namespace, plan: Plan, fleet: FleetProcesses, workdir: Path
) -> dict[str, Any]:
    """Run every mode; return the rows, the baseline and warnings."""
    options = modes.Options(args.timeout, CONNECT_TIMEOUT, args.concurrency)
    rows = [
        run_engine(plan, fleet, options),
        *run_pipeline(plan, fleet, options, workdir / "pipeline"),
        # After the crawls, with the fleet as warm as it was for the second one.
        run_floor(plan, fleet, options),
    ]
    if args.workers:
        fan_out = run_fan_out(plan, fleet, options, workdir / "fan-out", args.workers)
        rows.append(fan_out)
    naive = run_naive(plan, fleet, args) if args.naive_sample else None
    prometheus = run_prometheus(plan, fleet, options, args)
    warnings: list[str] = []
    fetches = plan.instances * len(ENDPOINTS)
    for mode in rows:
        mode["cpu_ms_per_fetch"] = 1000 * mode["cpu_s"] / fetches
        check_counts(mode, plan, warnings)
        check_descriptors(mode, args.concurrency, warnings)
    if naive and (naive["up"], naive["down"]) != (naive["sample"], 0):
        warnings.append(f"naive sample: up {naive['up']} down {naive['down']}")
    return {
        "modes": rows,
        "naive": naive,
        "prometheus": prometheus,
        "prometheus_hint": None if prometheus else peers.INSTALL_HINT,
        "warnings": warnings,
    }


def measure_faults(
    args: argparse.Namespace, plan: Plan, fleet: FleetProcesses, workdir: Path
) -> dict[str, Any]:
    """The fault mode: a clean run and one losing a worker; check both."""
    options = modes.Options(args.timeout, CONNECT_TIMEOUT, args.concurrency)
    progress(
        f"fault mode: PostgreSQL, Redis, {args.workers} workers and beat; a run "
        "without a fault, then one with a worker killed mid-run"
    )
    measured = faults.run_fault_mode(
        workdir / "fault",
        plan,
        fleet.port,
        options,
        args.workers,
        crawl_bound(plan.instances),
    )
    warnings: list[str] = []
    for run in measured["runs"]:
        faults.check_fault_counts(run, plan, warnings)
    return {**measured, "warnings": warnings}


def configuration(args: argparse.Namespace, open_files: int) -> dict[str, Any]:
    """The run's settings and machine, for the report."""
    return {
        "instances": args.instances,
        "hanging": args.hanging,
        "timeout": args.timeout,
        "connect_timeout": CONNECT_TIMEOUT,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "fault": args.fault,
        "naive_sample": args.naive_sample,
        "seed": args.seed,
        "endpoints": list(ENDPOINTS),
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg()[0],
        "open_files_limit": open_files,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def benchmark(args: argparse.Namespace, open_files: int, workdir: Path) -> None:
    """Start the fleet, measure, report; stop the fleet whatever happens."""
    config = configuration(args, open_files)
    plan = Plan(args.instances, args.hanging, args.seed)
    progress(f"starting a fleet of {plan.instances} fake instances")
    fleet = start_fleet(plan, fleet_shard_size(plan.instances, open_files))
    try:
        results: dict[str, Any] = {"config": config}
        if args.fault:
            results.update(measure_faults(args, plan, fleet, workdir))
        else:
            results.update(measure(args, plan, fleet, workdir))
        usage = fleet.usage()
        processes = len(fleet.shards)
    finally:
        fleet.stop()
    config["load_after"] = os.getloadavg()[0]
    if config["load_before"] > BUSY_LOAD:
        results["warnings"].append(
            "the machine was not idle before the run (1-minute load average "
            f"{config['load_before']:.2f}, which includes any run just before); "
            "wall times may include waiting for CPU"
        )
    results["fleet"] = {
        "port": fleet.port,
        "first_address": plan.address(0),
        "last_address": plan.address(plan.instances - 1),
        "start_s": fleet.start_seconds,
        "processes": processes,
        **usage,
    }
    (report.emit_faults if args.fault else report.emit)(results)
    report.write_json(results, args.output)
    print(f"results written to {args.output}")


def _terminated(signum: int, _frame: object) -> NoReturn:
    """Turn SIGTERM into an exit that runs the clean-up code."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark from the command line."""
    args = parse_args(argv)
    open_files = check_open_files(args)
    signal.signal(signal.SIGTERM, _terminated)
    workdir = Path(tempfile.mkdtemp(prefix="bench-crawl-"))
    started = time.monotonic()
    try:
        benchmark(args, open_files, workdir)
    except KeyboardInterrupt:
        print("bench.crawl: interrupted", file=sys.stderr)
        sys.exit(130)
    except (FleetError, ChildError, faults.ServiceError) as exc:
        fail(str(exc))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    progress(f"done in {time.monotonic() - started:.0f} s")

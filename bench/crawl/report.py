"""Print the benchmark's figures and write them as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.crawl.plan import ENDPOINTS, MAX_LATENCY, MIN_LATENCY

TARGET_INSTANCES = 10_000
TARGET_SECONDS = 30.0
COLUMNS = (
    ("mode", 40, "label"),
    ("wall s", 8, "wall_s"),
    ("inst/s", 8, "rate"),
    ("peak MiB", 9, "peak_rss_mib"),
    ("cpu s", 7, "cpu_s"),
    ("cpu ms/fetch", 13, "cpu_ms_per_fetch"),
    ("fleet cpu s", 12, "fleet_cpu_s"),
    ("peak fds", 9, "peak_fds"),
    ("up", 6, "up"),
    ("down", 5, "down"),
    ("skip", 5, "skipped"),
)


def _cell(value: Any, width: int, first: bool) -> str:
    """Format one table cell."""
    if isinstance(value, float):
        text = f"{value:.2f}" if value < 100 else f"{value:.1f}"
    else:
        text = "-" if value is None else str(value)
    return text.ljust(width) if first else text.rjust(width)


def table(rows: list[dict[str, Any]], columns=COLUMNS) -> list[str]:
    """The rows as aligned text, one column per (heading, width, key)."""
    lines = [" ".join(_cell(h, w, i == 0) for i, (h, w, _) in enumerate(columns))]
    for row in rows:
        cells = [_cell(row.get(k), w, i == 0) for i, (_, w, k) in enumerate(columns)]
        lines.append(" ".join(cells))
    return lines


def header(config: dict[str, Any], fleet: dict[str, Any]) -> list[str]:
    """What is crawled and how."""
    processes = fleet["processes"]
    return [
        f"Crawl benchmark: {config['instances']} fake instances on "
        f"{fleet['first_address']}..{fleet['last_address']} port {fleet['port']} "
        f"(fleet in {processes} separate process{'es' if processes > 1 else ''}, "
        f"listening after {fleet['start_s']:.1f} s)",
        f"endpoints: {', '.join(ENDPOINTS)}; latency {MIN_LATENCY * 1000:g}-"
        f"{MAX_LATENCY * 1000:g} ms per request (seed {config['seed']}); "
        f"hanging hosts: {config['hanging']}",
        f"timeout {config['timeout']:g} s, connect timeout "
        f"{config['connect_timeout']:g} s, concurrency {config['concurrency']}, "
        f"workers for fan-out: {config['workers']}",
        f"machine: {config['cpus']} CPUs, load average {config['load_before']:.2f} "
        f"before the run and {config['load_after']:.2f} after, open files limit "
        f"{config['open_files_limit']}",
    ]


def naive_lines(naive: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """The sequential baseline: measured sample and extrapolation."""
    hanging, timeout = config["hanging"], config["timeout"]
    return [
        f"naive sample: {naive['sample']} instances without hanging hosts, one "
        f"requests.get after another: {naive['wall_s']:.2f} s "
        f"({naive['rate']:.1f} inst/s), peak {naive['peak_rss_mib']:.1f} MiB, "
        f"up {naive['up']} down {naive['down']}",
        f"naive extrapolated to {config['instances']}: {naive['wall_s']:.2f} s / "
        f"{naive['sample']} x {config['instances'] - hanging} answering + {hanging} "
        f"hanging x {timeout:g} s x {len(ENDPOINTS)} endpoints (hanging part added "
        f"analytically, not measured) = {naive['extrapolated_s']:.1f} s",
    ]


def ratio_lines(results: dict[str, Any]) -> list[str]:
    """naive_extrapolated_time / our_time for each mode."""
    naive = results.get("naive")
    if not naive:
        return []
    naive_s = naive["extrapolated_s"]
    return [
        f"ratio naive / {mode['label']}: {naive_s / mode['wall_s']:.1f}x"
        for mode in results["modes"]
        if mode["wall_s"] > 0
    ]


def target_lines(results: dict[str, Any]) -> list[str]:
    """Whether the worker path meets 10,000 instances in under 30 s."""
    config = results["config"]
    if config["instances"] < TARGET_INSTANCES:
        return []
    lines = []
    for mode in results["modes"]:
        verdict = "met" if mode["wall_s"] < TARGET_SECONDS else "MISSED"
        lines.append(
            f"target {TARGET_INSTANCES} instances in < {TARGET_SECONDS:g} s "
            f"({mode['label']}): {mode['wall_s']:.2f} s for {config['instances']} "
            f"- {verdict}"
        )
    return lines


PIPELINE = "(b) pipeline"
FLOOR = "floor"
RSS_SHARE = 5  # at most a fifth of Prometheus's
WALL_OVER_FLOOR = 1.2


def peer_lines(results: dict[str, Any]) -> list[str]:
    """The pipeline against the floor and Prometheus, measured in this run."""
    modes = results["modes"]
    floor = next((m for m in modes if m["label"].startswith(FLOOR)), None)
    pipelines = [m for m in modes if m["label"].startswith(PIPELINE)]
    lines = []
    for mode in pipelines if floor else []:
        ratio = mode["wall_s"] / floor["wall_s"]
        lines.append(
            f"goal wall <= {WALL_OVER_FLOOR:g} x floor ({mode['label']}): "
            f"{mode['wall_s']:.2f} s / {floor['wall_s']:.2f} s = {ratio:.2f}x - "
            f"{'met' if ratio <= WALL_OVER_FLOOR else 'not met'}; CPU per fetch "
            f"{mode['cpu_ms_per_fetch']:.3f} ms against the floor's "
            f"{floor['cpu_ms_per_fetch']:.3f} ms"
        )
    prometheus = results.get("prometheus")
    if not prometheus:
        hint = results.get("prometheus_hint")
        return lines + ([f"Prometheus not compared: {hint}"] if hint else [])
    lines.append(
        f"Prometheus ({prometheus['targets']} targets each "
        f"{prometheus['interval_s']:g} s, {prometheus['scrapes']:.0f} scrapes in "
        f"{prometheus['window_s']:.1f} s): {prometheus['cpu_ms_per_fetch']:.3f} ms "
        f"CPU per scrape, peak {prometheus['peak_rss_mib']:.1f} MiB"
    )
    for mode in pipelines:
        cpu = mode["cpu_ms_per_fetch"] / prometheus["cpu_ms_per_fetch"]
        rss = mode["peak_rss_mib"] / prometheus["peak_rss_mib"]
        lines.append(
            f"goal CPU per fetch <= Prometheus's ({mode['label']}): "
            f"{mode['cpu_ms_per_fetch']:.3f} / {prometheus['cpu_ms_per_fetch']:.3f}"
            f" ms = {cpu:.2f}x - {'met' if cpu <= 1 else 'not met'}; peak RSS "
            f"{mode['peak_rss_mib']:.1f} MiB = {rss:.2f}x Prometheus's (goal <= "
            f"{1 / RSS_SHARE:.2f}x) - {'met' if rss <= 1 / RSS_SHARE else 'not met'}"
        )
    return lines


def emit(results: dict[str, Any], out: Callable[[str], None] = print) -> None:
    """Print everything after the run."""
    for line in header(results["config"], results["fleet"]):
        out(line)
    out("")
    for line in table(results["modes"]):
        out(line)
    for mode in results["modes"]:
        if "workers" in mode:
            walls = ", ".join(f"{w['wall_s']:.2f}" for w in mode["workers"])
            peaks = ", ".join(f"{w['peak_rss_mib']:.1f}" for w in mode["workers"])
            out(f"  {mode['label']}: per-worker wall s {walls}; peak MiB {peaks}")
    out("")
    if results.get("naive"):
        for line in naive_lines(results["naive"], results["config"]):
            out(line)
    for line in ratio_lines(results) + target_lines(results):
        out(line)
    for line in peer_lines(results):
        out(line)
    fleet = results["fleet"]
    processes = fleet["processes"]
    out(
        f"fleet ({processes} process{'es' if processes > 1 else ''}): "
        f"{fleet['cpu_s']:.1f} s CPU over the whole run, peak "
        f"{fleet['peak_rss_mib']:.1f} MiB per process; cpu s = CPU time of the "
        "crawling process(es) during the measured interval"
    )
    for warning in results["warnings"]:
        out(f"WARNING: {warning}")


FAULT_COLUMNS = (
    ("run", 40, "label"),
    ("wall s", 8, "wall_s"),
    ("inst/s", 8, "rate"),
    ("result", 11, "result"),
    ("total", 6, "total"),
    ("up", 6, "up"),
    ("down", 5, "down"),
    ("skip", 5, "skipped"),
    ("history", 8, "history_rows"),
    ("left", 5, "pending"),
)


def fault_lines(results: dict[str, Any]) -> list[str]:
    """The fault mode: both runs, what the fault cost, how it was recovered."""
    runs = [
        {**run, "rate": run["total"] / run["wall_s"] if run["wall_s"] else 0.0}
        for run in results["runs"]
    ]
    settings = results["settings"]
    lines = [
        f"fault mode: {settings['workers']} workers x {settings['pool_processes']} "
        f"pool processes on Redis and PostgreSQL, chunks of "
        f"{settings['chunk_size']}; housekeeping every "
        f"{settings['housekeeping_interval_s']} s re-sends a run silent for "
        f"{settings['heartbeat_timeout_s']} s; Redis visibility timeout "
        f"{settings['visibility_timeout_s']:g} s",
        "",
        *table(runs, FAULT_COLUMNS),
    ]
    clean, faulty = runs
    if clean["wall_s"] > 0:
        lines.append(
            f"the killed worker cost {faulty['wall_s'] - clean['wall_s']:+.2f} s "
            f"({faulty['wall_s'] / clean['wall_s']:.2f}x the fault-free run); "
            f"killed at {faulty['killed_at']} of {faulty['total']} processed"
        )
    lines.append(f"last fault of the run that lost a worker: {faulty['fault'] or '-'}")
    exact = all(
        run["up"] + run["down"] + run["skipped"] == run["total"] == run["history_rows"]
        for run in runs
    )
    lines.append(
        "counts exact: done + failed + skipped == total == history rows, in both "
        f"runs: {'yes' if exact else 'NO'}"
    )
    return lines


def emit_faults(results: dict[str, Any], out: Callable[[str], None] = print) -> None:
    """Print the fault mode's figures after the run."""
    for line in header(results["config"], results["fleet"]):
        out(line)
    out("")
    for line in fault_lines(results):
        out(line)
    for warning in results["warnings"]:
        out(f"WARNING: {warning}")


def write_json(results: dict[str, Any], path: Path) -> None:
    """Write the results to ``path``, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")

"""What the crawler is compared with on the same fleet: plain aiohttp with no
database (the floor), and Prometheus scraping each instance's ``/metrics``."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from bench.crawl.modes import Options, loopback_urls
from bench.crawl.plan import ENDPOINTS, METRICS_PATH, Plan

PROMETHEUS = "prometheus"
INSTALL_HINT = (
    "Prometheus is compared when its binary is on PATH: scripts/install-services "
    "installs Debian's package (apt-get install prometheus); nothing is downloaded "
    "at run time"
)
SCRAPES = re.compile(
    rb"^prometheus_target_interval_length_seconds_count\{[^}]*\} (\S+)$", re.M
)
READY_TIMEOUT = 120.0
POLL_SECONDS = 0.5


def run_floor(plan: Plan, port: int, options: Options) -> dict[str, Any]:
    """The plain-aiohttp floor: one session, both endpoints of every instance
    fetched and JSON-decoded with the crawler's concurrency and timeouts, and
    nothing stored."""
    import aiohttp

    urls = loopback_urls(plan, port)
    health: Counter[str] = Counter()

    async def main() -> None:
        timeout = aiohttp.ClientTimeout(
            total=options.timeout, sock_connect=options.connect_timeout
        )
        connector = aiohttp.TCPConnector(limit=options.concurrency)
        limit = asyncio.Semaphore(options.concurrency)
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, trust_env=False
        ) as session:

            async def one(base: str) -> None:
                answered = 0
                async with limit:
                    for path in ENDPOINTS:
                        try:
                            async with session.get(base + path) as response:
                                response.raise_for_status()
                                json.loads(await response.read())
                            answered += 1
                        except (aiohttp.ClientError, TimeoutError, ValueError):
                            pass
                health["up" if answered else "down"] += 1

            await asyncio.gather(*(one(url) for url in urls))

    began, cpu = time.monotonic(), time.process_time()
    asyncio.run(main())
    wall, cpu = time.monotonic() - began, time.process_time() - cpu
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "up": health["up"],
        "down": health["down"],
        "skipped": 0,
    }


def _scrapes(port: int) -> float:
    """Scrapes Prometheus has done so far, from its own metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return sum(float(n) for n in SCRAPES.findall(r.read()))


def _process_figures(pid: int) -> tuple[float, float]:
    """(CPU seconds, peak RSS MiB) of a process, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(stat[11]) + int(stat[12])
    cpu = ticks / os.sysconf("SC_CLK_TCK")
    status = Path(f"/proc/{pid}/status").read_text()
    peak = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024
    return cpu, peak


def run_prometheus(
    plan: Plan, port: int, options: Options, interval: float, rounds: int
) -> dict[str, Any] | None:
    """Prometheus scraping every answering instance's /metrics each ``interval``
    seconds: its CPU per scrape over ``rounds`` intervals once every target was
    scraped once, and its peak RSS. None when the binary is not installed."""
    binary = shutil.which(PROMETHEUS)
    if binary is None:
        return None
    from tests.services import free_port

    hanging = plan.hanging_indexes()
    targets = [
        f"{plan.address(i)}:{port}" for i in range(plan.instances) if i not in hanging
    ]
    directory = Path(tempfile.mkdtemp(prefix="bench-prometheus-"))
    config = {
        "global": {
            "scrape_interval": f"{interval:g}s",
            "scrape_timeout": f"{min(options.timeout, interval):g}s",
        },
        "scrape_configs": [
            {
                "job_name": "fleet",
                "metrics_path": METRICS_PATH,
                "static_configs": [{"targets": targets}],
            }
        ],
    }
    (directory / "prometheus.yml").write_text(json.dumps(config))
    web_port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{web_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + READY_TIMEOUT + interval
        while True:  # every target scraped once: the steady state begins
            time.sleep(POLL_SECONDS)
            try:
                if _scrapes(web_port) >= len(targets):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("Prometheus did not scrape every target in time")
        scrapes, (cpu, _) = _scrapes(web_port), _process_figures(process.pid)
        began = time.monotonic()
        time.sleep(interval * rounds)
        scrapes = _scrapes(web_port) - scrapes
        cpu_after, peak = _process_figures(process.pid)
        return {
            "label": "Prometheus: scraping /metrics",
            "targets": len(targets),
            "interval_s": interval,
            "window_s": time.monotonic() - began,
            "scrapes": scrapes,
            "cpu_s": cpu_after - cpu,
            "cpu_ms_per_fetch": 1000 * (cpu_after - cpu) / max(scrapes, 1),
            "peak_rss_mib": peak,
        }
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)

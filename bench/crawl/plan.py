"""The fleet to crawl: addresses, latencies and hanging hosts, from a seeded RNG."""

from __future__ import annotations

import random
import resource
from dataclasses import dataclass

ENDPOINTS = ("/system-info", "/stats")
METRICS_PATH = "/metrics"
MIN_LATENCY = 0.010
MAX_LATENCY = 0.060
HOSTS_PER_BLOCK = 250
MAX_INSTANCES = 256 * HOSTS_PER_BLOCK
# Descriptors beyond one listening socket per fake host: connections, files, pipes.
FD_MARGIN = 1024


@dataclass(frozen=True)
class Plan:
    """What the benchmark crawls; both the fleet and the crawler rebuild it."""

    instances: int
    hanging: int
    seed: int

    def address(self, index: int) -> str:
        """The loopback address of instance ``index``: 127.1.x.y."""
        block, host = divmod(index, HOSTS_PER_BLOCK)
        return f"127.1.{block}.{host + 1}"

    def addresses(self) -> list[str]:
        """Every instance's address, in instance order."""
        return [self.address(i) for i in range(self.instances)]

    def hanging_indexes(self) -> frozenset[int]:
        """Which instances hang: a seeded sample, spread over the fleet."""
        rng = random.Random(f"{self.seed}:hanging")
        return frozenset(rng.sample(range(self.instances), self.hanging))

    def latencies(self) -> list[tuple[float, ...]]:
        """Seeded per-endpoint answer delays (seconds) of every instance."""
        rng = random.Random(f"{self.seed}:latency")
        return [
            tuple(rng.uniform(MIN_LATENCY, MAX_LATENCY) for _ in ENDPOINTS)
            for _ in range(self.instances)
        ]


def raise_open_files_limit(needed: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one if below ``needed``; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed and (hard == resource.RLIM_INFINITY or soft < hard):
        soft = hard if hard != resource.RLIM_INFINITY else max(needed, soft)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft, hard


def crawler_files_needed(instances: int, concurrency: int) -> int:
    """Descriptors a crawling process may hold: the crawler keeps each finished
    host's connection open (keep-alive), so up to one per instance, plus margin."""
    return instances + 2 * concurrency + FD_MARGIN


def fleet_shard_size(instances: int, open_files: int) -> int:
    """Hosts per fleet process: a listener and a client connection each."""
    return max(0, min(instances, (open_files - FD_MARGIN) // 2))

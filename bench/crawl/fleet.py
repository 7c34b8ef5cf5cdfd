"""The fake fleet (tests.fleet.Fleet) in its own process(es), away from the crawler.

One process serves every host unless the open-files limit cannot hold a listening
socket plus an open connection per host; then the hosts are split over shards.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import signal
import socket
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from bench.crawl.plan import ENDPOINTS, METRICS_PATH, Plan

START_TIMEOUT = 300.0
STOP_TIMEOUT = 30.0
REPLY_TIMEOUT = 30.0
CONTEXT = multiprocessing.get_context("spawn")


class FleetError(Exception):
    """The fleet failed to start or to answer."""


def build_behaviours(plan: Plan, indexes: range) -> dict[str, Any]:
    """One Behaviour per address: small JSON after a seeded delay, or HANG."""
    from tests.fleet import HANG, JSON, RAW, Behaviour

    hanging = plan.hanging_indexes()
    latencies = plan.latencies()
    behaviours: dict[str, Any] = {}
    for index in indexes:
        address, delays = plan.address(index), latencies[index]
        if index in hanging:
            behaviours[address] = Behaviour(HANG)
            continue
        answers = {
            "/system-info": {"name": f"instance-{index}", "version": "3.3.1"},
            "/stats": {"users": index % 97, "records": index * 7},
        }
        paths = {
            path: Behaviour(JSON, delay=delay, data=answers[path])
            for path, delay in zip(ENDPOINTS, delays, strict=True)
        }
        # What Prometheus scrapes in the comparison: the same numbers as text,
        # after the first endpoint's delay.
        paths[METRICS_PATH] = Behaviour(
            RAW,
            delay=delays[0],
            body=(
                f'instance_info{{name="instance-{index}",version="3.3.1"}} 1\n'
                f"users {index % 97}\nrecords {index * 7}\n"
            ).encode(),
        )
        behaviours[address] = Behaviour(JSON, delay=delays[0], paths=paths)
    return behaviours


def _wait_listening(addresses: list[str], port: int, deadline: float) -> None:
    """Return once the first and last addresses accept connections."""
    for address in (addresses[0], addresses[-1]):
        while True:
            try:
                with socket.create_connection((address, port), timeout=1.0):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def _usage() -> dict[str, float]:
    """This process's CPU seconds, peak RSS (MiB) and open descriptors."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "open_fds": len(os.listdir("/proc/self/fd")),
    }


def serve(plan: Plan, indexes: range, port: int | None, conn: Connection) -> None:
    """Fleet process: serve some hosts, answer "usage", stop on "stop" or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    from tests.fleet import Fleet

    fleet = None
    try:
        began = time.monotonic()
        behaviours = build_behaviours(plan, indexes)
        fleet = Fleet(behaviours, port=port)
        fleet.record = False
        fleet.start()
        _wait_listening(list(behaviours), fleet.port, began + START_TIMEOUT)
        conn.send(("ready", fleet.port, time.monotonic() - began))
        while conn.recv() == "usage":
            conn.send(("usage", _usage()))
    except EOFError:
        pass  # the parent went away
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        if fleet is not None:
            fleet.stop()


@dataclass
class Shard:
    """One fleet process and the pipe to it."""

    process: BaseProcess
    conn: Connection

    def receive(self, timeout: float, what: str) -> tuple:
        """The next message from the shard, or FleetError."""
        try:
            if self.conn.poll(timeout):
                return self.conn.recv()
        except (EOFError, OSError):
            raise FleetError(f"the fleet process died while {what}") from None
        raise FleetError(f"the fleet process did not answer in time while {what}")

    def stop(self) -> None:
        """Ask the shard to stop; terminate, then kill it, if it does not."""
        with contextlib.suppress(OSError):
            self.conn.send("stop")
        self.process.join(STOP_TIMEOUT)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.conn.close()


@dataclass
class FleetProcesses:
    """Handle on the running fleet: its shards and shared port."""

    port: int = 0
    start_seconds: float = 0.0
    shards: list[Shard] = field(default_factory=list)

    def usage(self) -> dict[str, float]:
        """CPU time (summed), peak memory and open descriptors (largest shard)."""
        usages = []
        for shard in self.shards:
            shard.conn.send("usage")
            usages.append(shard.receive(REPLY_TIMEOUT, "reporting usage")[1])
        return {
            "cpu_s": sum(u["cpu_s"] for u in usages),
            "peak_rss_mib": max(u["peak_rss_mib"] for u in usages),
            "open_fds": max(u["open_fds"] for u in usages),
        }

    def start_shard(self, plan: Plan, indexes: range) -> None:
        """Start one shard on the fleet's port (or a free one) and wait for it."""
        parent_conn, child_conn = CONTEXT.Pipe()
        port = self.port or None
        process = CONTEXT.Process(
            target=serve,
            args=(plan, indexes, port, child_conn),
            name="bench-fleet",
            daemon=True,
        )
        process.start()
        child_conn.close()
        shard = Shard(process, parent_conn)
        self.shards.append(shard)
        message = shard.receive(START_TIMEOUT + 10, "starting")
        if message[0] != "ready":
            raise FleetError(f"the fleet failed to start: {message[1]}")
        self.port = message[1]
        self.start_seconds = max(self.start_seconds, message[2])

    def stop(self) -> None:
        """Stop every shard."""
        for shard in self.shards:
            shard.stop()
        self.shards.clear()


def start_fleet(plan: Plan, shard_size: int) -> FleetProcesses:
    """Start the fleet in shards of at most ``shard_size`` hosts; all listen."""
    fleet = FleetProcesses()
    try:
        for start in range(0, plan.instances, shard_size):
            fleet.start_shard(
                plan, range(start, min(start + shard_size, plan.instances))
            )
    except BaseException:
        fleet.stop()
        raise
    return fleet

"""Run measured work in child processes, each reporting its own peak memory."""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

CONTEXT = multiprocessing.get_context("spawn")
# Open descriptors are counted from this process, so the measured one pays nothing.
FD_SAMPLE_SECONDS = 0.5


class ChildError(Exception):
    """A child process failed, died or ran out of time."""


def _child(func: Callable[..., dict], args: tuple, conn: Connection) -> None:
    """Child body: run ``func``, send its result with usage, or the traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    try:
        result = func(*args)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        result["peak_rss_mib"] = round(usage.ru_maxrss / 1024, 1)
        result.setdefault("cpu_s", usage.ru_utime + usage.ru_stime)
        conn.send(("ok", result))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def _stop(processes: Sequence[BaseProcess]) -> None:
    """Terminate, then kill, whichever of ``processes`` still run."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join(5)


def run_children(
    calls: Sequence[tuple[Callable[..., dict], tuple]], timeout: float
) -> list[dict]:
    """Run each (function, args) in its own process; return their results in order."""
    processes: list[BaseProcess] = []
    conns: list[Connection] = []
    try:
        for index, (func, args) in enumerate(calls):
            parent_conn, child_conn = CONTEXT.Pipe(duplex=False)
            process = CONTEXT.Process(
                target=_child,
                args=(func, args, child_conn),
                name=f"bench-crawl-{index}",
                daemon=True,
            )
            process.start()
            child_conn.close()
            processes.append(process)
            conns.append(parent_conn)
        return _collect(processes, conns, time.monotonic() + timeout)
    finally:
        _stop(processes)
        for conn in conns:
            conn.close()


def open_fds(pid: int | None) -> int:
    """How many descriptors process ``pid`` has open (0 once it is gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _collect(
    processes: Sequence[BaseProcess], conns: list[Connection], deadline: float
) -> list[dict]:
    """Wait for one message per child until ``deadline``; sample their descriptors."""
    results: dict[int, dict] = {}
    peaks = [0] * len(conns)
    while len(results) < len(conns):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ChildError("a benchmark process ran out of time")
        for index, process in enumerate(processes):
            if index not in results:
                peaks[index] = max(peaks[index], open_fds(process.pid))
        pending = [c for i, c in enumerate(conns) if i not in results]
        for conn in wait(pending, timeout=min(remaining, FD_SAMPLE_SECONDS)):
            index = conns.index(conn)
            try:
                status, payload = conn.recv()
            except EOFError:
                raise ChildError("a benchmark process died") from None
            if status != "ok":
                raise ChildError(f"a benchmark process failed:\n{payload}")
            results[index] = {**payload, "peak_fds": peaks[index]}
    return [results[i] for i in range(len(conns))]


def make_barrier(parties: int) -> Any:
    """A barrier that child processes of this module can share."""
    return CONTEXT.Barrier(parties)

"""A synchronous operation's process: gone once it exits, never confused with
another process that later has its pid, never judged on another host."""

from __future__ import annotations

import socket
import subprocess
import sys

from tracker.batch import runners


def test_a_process_is_gone_once_it_has_exited():
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.readline()"],
        stdin=subprocess.PIPE,
    )
    started = runners._started(child.pid)
    runner = f"{socket.gethostname()} {child.pid} {started}"
    assert started and not runners.is_gone(runner)
    child.communicate(b"\n")
    assert runners.is_gone(runner)


def test_a_pid_of_another_process_since_is_not_the_runner():
    mine = runners.this_process()
    host, pid, started = mine.split()
    assert not runners.is_gone(mine)
    assert runners.is_gone(f"{host} {pid} {int(started) + 1}")


def test_another_hosts_or_an_unrecorded_runner_is_left_to_its_heartbeat():
    _host, _pid, started = runners.this_process().split()
    assert not runners.is_gone(f"elsewhere.example.org 999999 {started}")
    assert not runners.is_gone(None)
    assert not runners.is_gone("")
    assert not runners.is_gone(f"{socket.gethostname()} not-a-pid")
    assert runners.is_gone(f"{socket.gethostname()} {2**22 + 1}")  # past pid_max

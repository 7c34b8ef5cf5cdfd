"""Which process runs a synchronous operation, and whether it still does.

An operation run by its caller (an import from the command line or an upload
request) records its process as ``host pid start``; ``start`` is when that
process started (Linux's ``/proc``), so a pid used again by another process is
not mistaken for it. Killed outright, the process cannot close its operation;
the next caller on the same host sees it gone and closes it, instead of being
refused until housekeeping notices the silent heartbeat.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _started(pid: int) -> str:
    """When process ``pid`` started, in clock ticks since boot ('' if unknown)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # The command name (2nd field) may hold spaces: count from its ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


def this_process() -> str:
    """This process, as an operation records its runner."""
    pid = os.getpid()
    return f"{socket.gethostname()} {pid} {_started(pid)}".strip()


def is_gone(runner: str | None) -> bool:
    """True if ``runner`` was a process on this host that no longer runs."""
    parts = (runner or "").split()
    if len(parts) < 2 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False  # another host's, or not recorded: only its heartbeat tells
    pid = int(parts[1])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    recorded = parts[2] if len(parts) > 2 else ""
    return bool(recorded) and _started(pid) not in ("", recorded)

"""Real Celery workers and beat, started as the operator would start them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class CeleryProcess:
    """A ``celery -A tracker.worker ...`` process in its own process group."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        log: Path,
        command: list[str] | None = None,
    ) -> None:
        """Run celery with ``args``, or ``command`` (manage.py runworker) instead."""
        self.log = log
        self._log_file = log.open("w")
        self.process = subprocess.Popen(
            command or [sys.executable, "-m", "celery", "-A", "tracker.worker", *args],
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not seen; log:\n{self.output()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and its children."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def signal(self, number: int) -> None:
        """Send ``number`` to the main process only (SIGQUIT: cold shutdown)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, number)

    def pool_processes(self) -> list[int]:
        """The pids of the main process's children (a worker's pool)."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except OSError:
            return []

    def stop(self) -> None:
        """End the process at the end of a test: nothing waits for its tasks,
        so a warm shutdown would only cost time."""
        if self.process.poll() is None:
            self.kill()
        self._log_file.close()


def celery_environment(
    settings: dict[str, object], instance_path: Path
) -> dict[str, str]:
    """The environment of a worker configured like the test app."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env["TRACKER_INSTANCE_PATH"] = str(instance_path)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), env.get("PYTHONPATH")])
    )
    for key, value in settings.items():
        env[f"TRACKER_{key}"] = value if isinstance(value, str) else repr(value)
    return env


def start_worker(
    env: dict[str, str], log: Path, concurrency: int = 2, beat: Path | None = None
):
    args = [
        "worker",
        f"--concurrency={concurrency}",
        "--loglevel=info",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if beat is not None:
        args += ["--beat", "-s", str(beat)]
    worker = CeleryProcess(args, env, log)
    worker.wait_for("ready.")
    return worker


def start_beat(env: dict[str, str], log: Path, schedule: Path) -> CeleryProcess:
    """A ``celery beat`` of its own, so that killing a worker leaves it running."""
    beat = CeleryProcess(["beat", "--loglevel=info", "-s", str(schedule)], env, log)
    beat.wait_for("beat: Starting...")
    return beat

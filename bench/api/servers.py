"""Start and stop the databases and HTTP servers the benchmark measures."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
SECRET_KEY = "bench-api-fixed-secret-key-shared-by-every-worker"
READY_PATH = "/api/openapi.json"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# gunicorn as shipped (gunicorn.conf.py); gunicorn's own defaults (sync
# workers, each connection closed after its answer, no access log), the
# earlier way of serving; and the single-threaded development server.
SERVER_KINDS = ("gunicorn", "sync", "naive")
CONFIG_FILE = REPO_ROOT / "gunicorn.conf.py"


class BenchError(RuntimeError):
    """A server or database could not be set up; the message says why."""


@dataclass
class Server:
    """A running HTTP server process and where it listens."""

    kind: str
    port: int
    process: subprocess.Popen
    log: Path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with closing(socket.socket()) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def temp_directory() -> Iterator[Path]:
    """Yield a fresh temporary directory and remove it afterwards."""
    path = Path(tempfile.mkdtemp(prefix="tracker-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a process and its live descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        with suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


@dataclass
class Databases:
    """Makes empty databases of one kind; ``server_pid`` is PostgreSQL's
    postmaster (None for SQLite, which runs inside the web processes)."""

    make: Callable[[str], str]
    server_pid: int | None = None

    def __call__(self, name: str) -> str:
        return self.make(name)


@contextmanager
def database_urls(kind: str, workdir: Path) -> Iterator[Databases]:
    """Yield a function that creates an empty database of KIND and answers its URL."""
    if kind == "sqlite":
        yield Databases(lambda name: f"sqlite:///{workdir / name}.sqlite")
        return
    server = _start_postgres()
    try:

        def make(name: str) -> str:
            server.admin(f"CREATE DATABASE {name}")
            return server.url(name)

        pid_file = server.directory / "data" / "postmaster.pid"
        yield Databases(make, int(pid_file.read_text().split()[0]))
    finally:
        server.stop()


def _start_postgres():
    """Start a throwaway PostgreSQL cluster with the test suite's helper."""
    import pytest

    from tests.services import start_postgres

    try:
        return start_postgres()
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        raise BenchError(f"PostgreSQL unavailable: {exc.msg}") from None
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip()
        raise BenchError(f"PostgreSQL did not start: {detail}") from None


def app_environment(database_url: str, instance_path: Path) -> dict[str, str]:
    """Return the environment the app processes run with; no TRACKER_* leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
    )
    env["TRACKER_INSTANCE_PATH"] = str(instance_path)
    env["TRACKER_SQLALCHEMY_DATABASE_URI"] = database_url
    env["TRACKER_SECRET_KEY"] = SECRET_KEY
    # Throughput is measured from one address: no registration rate limit.
    env["TRACKER_API_REGISTRATION_RATE_LIMIT"] = "off"
    return env


def migrate(env: dict[str, str], cwd: Path) -> None:
    """Create the tables with ``manage.py db upgrade``."""
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "manage.py"), "db", "upgrade"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"db upgrade failed: {done.stderr.strip()[-2000:]}")


def server_command(
    kind: str, port: int, workers: int, timeout: int | None = None
) -> list[str]:
    """Return the command line that serves the app as KIND on PORT; gunicorn
    kills a worker busy for longer than ``timeout`` seconds (its own default
    when None)."""
    limit = [] if timeout is None else ["--timeout", str(timeout)]
    if kind == "gunicorn":
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            str(CONFIG_FILE),
            "--workers",
            str(workers),
            "--bind",
            f"{HOST}:{port}",
            *limit,
        ]
    if kind == "sync":
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--worker-class",
            "sync",
            "--bind",
            f"{HOST}:{port}",
            *limit,
            "--log-level",
            "warning",
            "tracker:create_app()",
        ]
    return [sys.executable, "-m", "bench.api.devserver", "--port", str(port)]


@contextmanager
def serving(
    kind: str, env: dict[str, str], cwd: Path, workers: int
) -> Iterator[Server]:
    """Run the app as KIND until the block ends, then stop its whole process group."""
    port = free_port()
    log = cwd / f"{kind}.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            server_command(kind, port, workers),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(kind, port, process, log)
    try:
        wait_ready(server)
        yield server
    finally:
        stop_process_group(process)


def wait_ready(server: Server) -> None:
    """Poll the OpenAPI document until it answers 200, or fail with the log's tail."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(f"{server.kind} exited early: {log_tail(server.log)}")
        if _answers_ok(server.port):
            return
        time.sleep(0.1)
    raise BenchError(f"{server.kind} not ready in {READY_TIMEOUT:.0f}s")


def _answers_ok(port: int) -> bool:
    """Tell whether GET READY_PATH answers 200."""
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", READY_PATH)
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def stop_process_group(process: subprocess.Popen) -> None:
    """Terminate a process and its children; kill them if they linger."""
    _signal_group(process, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT)


def _signal_group(process: subprocess.Popen, sig: signal.Signals) -> None:
    """Send SIG to the process group the server leads, if it is still there."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def log_tail(path: Path, lines: int = 20) -> str:
    """Return the last lines of a server log."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])

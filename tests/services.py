"""Throwaway servers for the test suite: PostgreSQL and Redis on loopback."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")
# A memory-backed file system, where there is one: a throwaway cluster never
# needs the disk, and cloning a database is then a copy in memory.
MEMORY_DIRECTORY = Path("/dev/shm")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str):
    """Fail under CI (a missing service is a broken run), skip on a laptop."""
    if in_ci():
        pytest.fail(f"required service unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port(host: str = "127.0.0.1") -> int:
    with closing(socket.socket()) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def scratch_directory(prefix: str) -> Path:
    """A fresh directory for a throwaway server's files, in memory if possible."""
    in_memory = MEMORY_DIRECTORY.is_dir() and os.access(MEMORY_DIRECTORY, os.W_OK)
    return Path(
        tempfile.mkdtemp(prefix=prefix, dir=MEMORY_DIRECTORY if in_memory else None)
    )


def _pg_bin() -> Path | None:
    for candidate in (os.environ.get("PG_BIN"), *PG_BIN_CANDIDATES):
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@dataclass
class PostgresServer:
    port: int
    directory: Path
    bin: Path
    run_as: list[str]
    options: str = ""  # the server's command-line options, to start it again
    _names: itertools.count = field(default_factory=itertools.count)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, template: str = "template1") -> str:
        """Create a database as a copy of ``template``; return its name."""
        name = f"tracker_test_{next(self._names)}"
        self.admin(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
        return name

    def drop_database(self, name: str) -> None:
        self.admin(f"DROP DATABASE {name} WITH (FORCE)")

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
            autocommit=True,
        ) as conn:
            conn.execute(sql)

    def pg_ctl(self, action: str, *options: str, check: bool = True) -> None:
        """Run ``pg_ctl ACTION`` on this cluster (stop, restart: the database
        going away under the application, for real)."""
        subprocess.run(
            [
                *self.run_as,
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.directory / "data"),
                "-l",
                str(self.directory / "log"),
                "-w",
                *options,
                action,
            ],
            capture_output=True,
            check=check,
            cwd="/tmp",
        )

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "immediate", check=False)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """Start a throwaway PostgreSQL cluster on a free loopback port."""
    pg_bin = _pg_bin()
    if pg_bin is None:
        unavailable("PostgreSQL server binaries (initdb) not found")
    directory = scratch_directory("tracker-pg-")
    run_as: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root; the postgres system user owns the cluster.
        shutil.chown(directory, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        [
            *run_as,
            str(pg_bin / "initdb"),
            "-D",
            str(directory / "data"),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ],
        capture_output=True,
        check=True,
        cwd="/tmp",
    )
    options = (
        f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    server = PostgresServer(port, directory, pg_bin, run_as, options)
    server.pg_ctl("start", "-o", options)
    deadline = time.monotonic() + 10
    while True:
        try:
            server.admin("SELECT 1")
            return server
        except Exception:
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.1)


@dataclass
class RedisServer:
    port: int
    directory: Path
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_redis() -> RedisServer:
    """Start a throwaway Redis on a free loopback port."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server not installed")
    directory = Path(tempfile.mkdtemp(prefix="tracker-redis-"))
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(directory / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return RedisServer(port, directory, process)
        except OSError:
            time.sleep(0.05)
    process.kill()
    unavailable("redis-server did not start")
    raise AssertionError("unreachable")


REPO_ROOT = Path(__file__).resolve().parents[1]
GUNICORN_CONFIG = REPO_ROOT / "gunicorn.conf.py"


@dataclass
class GunicornServer:
    url: str
    process: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM the arbiter (a graceful stop), SIGKILL its group if it lingers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(timeout=10)


def start_gunicorn(
    database_url: str, directory: Path, *args: str, ready_path: str = "/healthz"
) -> GunicornServer:
    """Serve the app with real gunicorn and the shipped ``gunicorn.conf.py`` on a
    free loopback port (``args`` are extra command-line flags)."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    environment.update(
        PYTHONPATH=str(REPO_ROOT),
        TRACKER_SQLALCHEMY_DATABASE_URI=database_url,
        TRACKER_SECRET_KEY="gunicorn-test-secret-key-shared-by-every-worker",
        TRACKER_INSTANCE_PATH=str(directory / "instance"),
        TRACKER_PASSWORD_HASH_METHOD="pbkdf2:sha256:1",
    )
    log = directory / "gunicorn.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(GUNICORN_CONFIG),
                "--bind",
                f"127.0.0.1:{port}",
                *args,
            ],
            cwd=directory,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = GunicornServer(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {server.log_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(f"GET {ready_path} HTTP/1.0\r\n\r\n".encode())
                if sock.recv(64).split(b"\r\n")[0].endswith(b" 200 OK"):
                    return server
        except OSError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"gunicorn not ready: {server.log_text()[-3000:]}")

"""Real processes for the sync crash tests, started as an operator would and
killed with SIGKILL: the server and a middleman served over HTTP on loopback,
and a field device's or middleman's ``flask`` commands.

Run as a module, this is their launcher::

    python -m tests.sync.processes [--hold] server --host H --port P \\
        --instance-path DIR --settings JSON [--commit-delay S]
    python -m tests.sync.processes [--hold] relay --host H --port P \\
        --database-url URL [--commit-delay S]
    python -m tests.sync.processes [--hold] flask --app APP COMMAND...

A service prints ``serving on http://H:P`` once it listens;
``flask`` is the ``flask`` command itself. With ``--hold`` the process imports
its code (and builds a service's app) and then waits for a line on stdin before
it does anything else: a standby that replaces a killed process at once instead
of after seconds of imports on a loaded machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SERVING = "serving on "
START_TIMEOUT = 180  # seconds; only a guard against hanging forever
POLL_INTERVAL = 0.01


def loopback_host() -> str:
    """A random address in 127.0.0.0/8, so tests running at once do not meet."""
    pick = random.Random(os.urandom(8))
    return f"127.{pick.randint(1, 254)}.{pick.randint(0, 255)}.{pick.randint(1, 254)}"


def child_environment() -> dict[str, str]:
    """This environment without the developer's settings or proxies."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TRACKER_", "FLASK_"))
        and key.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env["NO_PROXY"] = env["no_proxy"] = "*"  # loopback only, never via a proxy
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ChildProcess:
    """A launcher process in its own process group, its output in a log file."""

    def __init__(
        self, name: str, launch: list[str], directory: Path, hold: bool = False
    ) -> None:
        self.name = name
        self.launch = launch
        self.log = directory / f"{name}.log"
        self._log_file = self.log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.sync.processes",
                *(["--hold"] if hold else []),
                *launch,
            ],
            cwd=directory,  # no stray settings.cfg is read
            env=child_environment(),
            stdin=subprocess.PIPE if hold else subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def go(self) -> ChildProcess:
        """Let a process started with ``hold`` begin its work."""
        stdin = self.process.stdin
        assert stdin is not None, f"{self.name} was not started on hold"
        try:
            stdin.write(b"go\n")
            stdin.close()
        except BrokenPipeError:
            raise AssertionError(
                f"{self.name} died on hold\n{self.describe()}"
            ) from None
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def describe(self) -> str:
        """The process's name, state and the end of its log, for failure messages."""
        state = self.process.poll()
        status = "running" if state is None else f"exited with {state}"
        return f"--- {self.name} ({status}), {self.log}:\n{self.output()[-3000:]}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def _close(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        self._log_file.close()

    def kill(self) -> None:
        """SIGKILL the whole process group, as a power cut or the OOM killer would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)
        self._close()

    def finish(self, timeout: float = START_TIMEOUT) -> str:
        """Wait for the command to end; fail unless it succeeded; return its log."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.name} did not finish in {timeout}s\n{self.describe()}"
            ) from None
        self._close()
        assert self.process.returncode == 0, self.describe()
        return self.output()


class HttpProcess(ChildProcess):
    """A service of this launcher listening on ``url``."""

    def __init__(
        self,
        name: str,
        launch: list[str],
        directory: Path,
        host: str,
        port: int,
        hold: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        self.service_launch = launch
        super().__init__(
            name, [*launch, "--host", host, "--port", str(port)], directory, hold
        )

    def wait_until_serving(self) -> HttpProcess:
        wait_until(
            lambda: f"{SERVING}{self.url}" in self.output(),
            f"{self.name} to listen on {self.url}",
            [self],
        )
        return self


class Processes:
    """Every process a test starts, each SIGKILLed at the end whatever happened."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[ChildProcess] = []
        self._names: dict[str, int] = {}

    def _name(self, role: str) -> str:
        self._names[role] = self._names.get(role, 0) + 1
        return f"{role}-{self._names[role]}"

    def _keep(self, child: ChildProcess) -> Any:
        self.started.append(child)
        return child

    def _serve(self, role: str, launch: list[str]) -> HttpProcess:
        # Here, not at the top: the launcher children need no pytest.
        from tests.services import free_port

        # A random address of its own: the port is free there, now and later.
        host = loopback_host()
        port = free_port(host)
        return self._keep(
            HttpProcess(self._name(role), launch, self.directory, host, port)
        )

    def tracker(
        self,
        settings: dict[str, Any],
        instance_path: Path,
        commit_delay: float = 0.0,
    ) -> HttpProcess:
        """Start the tracker app (``create_app(settings)``) as an HTTP server."""
        launch = [
            "server",
            "--instance-path",
            str(instance_path),
            "--settings",
            json.dumps(settings),
            "--commit-delay",
            str(commit_delay),
        ]
        return self._serve("server", launch)

    def relay(self, database_url: str, commit_delay: float = 0.0) -> HttpProcess:
        """Start a middleman (``create_relay_app``) as an HTTP server."""
        launch = [
            "relay",
            "--database-url",
            database_url,
            "--commit-delay",
            str(commit_delay),
        ]
        return self._serve("relay", launch)

    def flask(self, role: str, app: str, *args: str, hold: bool = False) -> Any:
        """Run ``flask --app APP ARGS...``, as on a field device or middleman."""
        launch = ["flask", "--app", app, *args]
        return self._keep(
            ChildProcess(self._name(role), launch, self.directory, hold=hold)
        )

    def standby(self, running: ChildProcess) -> Any:
        """The same process again, started on hold to replace ``running`` once
        it is killed; a service will listen on the same address and port."""
        role = running.name.rsplit("-", 1)[0]
        if isinstance(running, HttpProcess):
            child = HttpProcess(
                self._name(role),
                running.service_launch,
                self.directory,
                running.host,
                running.port,
                hold=True,
            )
        else:
            child = ChildProcess(
                self._name(role), running.launch, self.directory, hold=True
            )
        return self._keep(child)

    def kill_all(self) -> None:
        for child in self.started:
            if child.alive() or not child._log_file.closed:
                child.kill()


def wait_until(
    condition: Callable[[], Any],
    what: str,
    watch: Iterable[ChildProcess] = (),
    timeout: float = START_TIMEOUT,
) -> Any:
    """Poll ``condition`` until it is true and return its value; fail with the
    watched processes' logs if one of them ends first. The deadline only
    guards against hanging forever: nothing here measures speed."""
    watch = list(watch)
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if any(not child.alive() for child in watch):
            value = condition()  # it may have happened just before the exit
            if value:
                return value
            logs = "\n".join(child.describe() for child in watch)
            raise AssertionError(f"waiting for {what}, but a process ended:\n{logs}")
        if time.monotonic() > deadline:
            logs = "\n".join(child.describe() for child in watch)
            raise AssertionError(f"still waiting for {what} after {timeout}s\n{logs}")
        time.sleep(POLL_INTERVAL)


def _slow_commits(seconds: float) -> None:
    """Make every commit of this process take ``seconds`` longer, as on a slow
    disk, with its writes done but not yet committed: a SIGKILL then lands in
    the middle of work on any machine, however fast."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    def pause(_session: Session) -> None:
        time.sleep(seconds)

    event.listen(Session, "before_commit", pause)


def _wait_for_go(hold: bool) -> None:
    if hold:
        print("on hold", flush=True)
        if not sys.stdin.readline():
            sys.exit("never told to go")


def _service(argv: list[str], hold: bool) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.sync.processes")
    roles = parser.add_subparsers(dest="role", required=True)
    server = roles.add_parser("server", help="the tracker app")
    server.add_argument("--instance-path", required=True)
    server.add_argument("--settings", required=True, help="a JSON object")
    relay = roles.add_parser("relay", help="a middleman")
    relay.add_argument("--database-url", required=True)
    for role in (server, relay):
        role.add_argument("--host", required=True)
        role.add_argument("--port", type=int, required=True)
        role.add_argument("--commit-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    if args.role == "server":
        from tracker import create_app

        app = create_app(
            json.loads(args.settings), instance_path=args.instance_path, environ={}
        )
    else:
        from tests.sync.field_app import create_relay_app

        app = create_relay_app(args.database_url)
    from werkzeug.serving import make_server

    _wait_for_go(hold)
    if args.commit_delay:
        _slow_commits(args.commit_delay)
    server = make_server(args.host, args.port, app, threaded=True)
    print(f"{SERVING}http://{args.host}:{server.server_port}", flush=True)
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    """Serve the tracker or a middleman until killed, or run ``flask``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    hold = argv[:1] == ["--hold"]
    if hold:
        argv = argv[1:]
    if argv[:1] != ["flask"]:
        _service(argv, hold)
        return
    import flask.cli

    import tests.sync.field_app  # noqa: F401 - what the command loads, paid early

    _wait_for_go(hold)
    sys.argv = argv
    flask.cli.main()


if __name__ == "__main__":
    main()

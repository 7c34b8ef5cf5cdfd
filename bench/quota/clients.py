"""Fake field clients speaking the quota blueprint's protocol, in their own process.

    python -m bench.quota.clients COUNT SEED

Serves COUNT clients on 127.0.80.1, 127.0.80.2, ... (one port, aiohttp, in-memory
state, random counts, ceilings 0). Commands arrive on stdin and answers leave on
stdout, one JSON object a line; the process ends on ``stop`` or when stdin closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import queue
import random
import resource
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

FIRST_ADDRESS = "127.0.80.1"
MAX_CLIENTS = 10_000
INITIAL_COUNT_MAX = 500
PORT_ATTEMPTS = 5
SPARE_FDS = 256
REPO_ROOT = Path(__file__).resolve().parents[2]


class FakeClientsError(Exception):
    """The fake clients' process failed to start or to answer."""


def addresses(count: int) -> list[str]:
    """``count`` loopback addresses from 127.0.80.1, skipping .0 and .255."""
    if not 1 <= count <= MAX_CLIENTS:
        raise ValueError(f"count must be from 1 to {MAX_CLIENTS}")
    found: list[str] = []
    value = int(ipaddress.IPv4Address(FIRST_ADDRESS))
    for _ in range(count * 2):  # .0 and .255 skipped: well under 2x needed
        address = ipaddress.IPv4Address(value)
        value += 1
        if address.packed[3] not in (0, 255):
            found.append(str(address))
            if len(found) == count:
                break
    assert all(a.startswith("127.") for a in found)
    return found


def secret_for(index: int, seed: int) -> str:
    """The shared secret of client ``index``."""
    return hashlib.sha256(f"bench-quota-{seed}-{index}".encode()).hexdigest()[:32]


def raise_open_files(needed: int) -> None:
    """Raise the soft RLIMIT_NOFILE to the hard limit if ``needed`` is above it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class FakeClient:
    secret: str
    count: int
    ceiling: int = 0
    window_start: int = 0
    window_expires: int = 0

    def state(self, kind: str) -> dict[str, Any]:
        return {
            "record_kind": kind,
            "ceiling": self.ceiling,
            "count": self.count,
            "window_start": self.window_start,
            "window_expires": self.window_expires,
            "used_overrides": [],
        }


class Clients:
    """Every fake client by address, and what they were asked since the last stats."""

    def __init__(self, count: int, seed: int, latency: float = 0.0) -> None:
        self.count = count
        self.seed = seed
        self.latency = latency  # seconds each answer waits: the field's network
        self.addresses = addresses(count)
        self.reset()

    def reset(self) -> None:
        rng = random.Random(self.seed)
        self.by_address = {
            address: FakeClient(
                secret_for(index, self.seed), rng.randint(0, INITIAL_COUNT_MAX)
            )
            for index, address in enumerate(self.addresses)
        }
        self.calls = {"get": 0, "put": 0, "refused": 0, "unauthorized": 0, "bad": 0}

    def advance(self, most: int, seed: int) -> int:
        """Each client creates 0..``most`` records, never past its ceiling."""
        rng = random.Random(seed)
        created = 0
        for address in self.addresses:
            client = self.by_address[address]
            room = max(0, client.ceiling - client.count)
            step = rng.randint(0, min(most, room))
            client.count += step
            created += step
        return created

    def stats(self) -> dict[str, Any]:
        """Totals over every client, and the calls since the last stats."""
        clients = self.by_address.values()
        result = {
            "clients": len(self.by_address),
            "sum_ceiling": sum(c.ceiling for c in clients),
            "sum_count": sum(c.count for c in clients),
            "count_over_ceiling": sum(c.count > c.ceiling for c in clients),
            "ceiling_zero": sum(c.ceiling == 0 for c in clients),
            "ceilings_digest": hashlib.sha256(
                ",".join(str(c.ceiling) for c in clients).encode()
            ).hexdigest()[:16],
            **self.calls,
        }
        self.calls = dict.fromkeys(self.calls, 0)
        return result

    def _client(self, request: Any) -> FakeClient | None:
        address = request.transport.get_extra_info("sockname")[0]
        client = self.by_address.get(address)
        auth = request.headers.get("Authorization", "")
        if client is None or not hmac.compare_digest(auth, f"Bearer {client.secret}"):
            self.calls["unauthorized"] += 1
            return None
        return client

    async def show(self, request: Any) -> Any:
        from aiohttp import web

        client = self._client(request)
        if client is None:
            return _error(401, "Unauthorized", "wrong or missing client credentials")
        self.calls["get"] += 1
        await asyncio.sleep(self.latency)
        return web.json_response(client.state(request.match_info["kind"]))

    async def change(self, request: Any) -> Any:
        from aiohttp import web

        client = self._client(request)
        if client is None:
            return _error(401, "Unauthorized", "wrong or missing client credentials")
        await asyncio.sleep(self.latency)
        try:
            data = await request.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            self.calls["bad"] += 1
            return _error(400, "Invalid JSON", "body: must be a JSON object")
        values = {}
        for name in ("ceiling", "window_start", "window_expires"):
            value = data.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                self.calls["bad"] += 1
                return _error(400, "Invalid value", f"{name}: must be >= 0")
            values[name] = value
        if values["window_expires"] <= values["window_start"]:
            self.calls["bad"] += 1
            return _error(400, "Invalid value", "window_expires: must follow start")
        if values["ceiling"] < client.count:
            self.calls["refused"] += 1
            return _error(
                409,
                "Ceiling below count",
                f"the ceiling is below the {client.count} records already created",
                count=client.count,
            )
        client.ceiling = values["ceiling"]
        client.window_start = values["window_start"]
        client.window_expires = values["window_expires"]
        self.calls["put"] += 1
        return web.json_response(client.state(request.match_info["kind"]))


def _error(status: int, error: str, message: str, **extra: Any) -> Any:
    from aiohttp import web

    return web.json_response(
        {"error": error, "message": message, **extra}, status=status
    )


def _free_port(host: str) -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


async def _bind(runner: Any, hosts: list[str]) -> int:
    """Listen on every address at one port; try a few ports if one is taken."""
    from aiohttp import web

    for attempt in range(PORT_ATTEMPTS):
        port = _free_port(hosts[0])
        sites = []
        try:
            for host in hosts:
                site = web.TCPSite(runner, host, port, backlog=1024)
                await site.start()
                sites.append(site)
            return port
        except OSError:
            for site in sites:
                await site.stop()
            if attempt == PORT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def serve(count: int, seed: int, latency: float = 0.0) -> None:
    """Serve the clients and answer commands until ``stop`` or end of stdin."""
    from aiohttp import web

    raise_open_files(count + SPARE_FDS)
    clients = Clients(count, seed, latency)
    app = web.Application()
    app.router.add_get("/quota/{kind}", clients.show)
    app.router.add_put("/quota/{kind}", clients.change)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    loop = asyncio.get_running_loop()
    try:
        port = await _bind(runner, clients.addresses)
        _say({"ready": True, "port": port, "addresses": clients.addresses})
        while True:  # one command a line; ends on "stop" or end of stdin
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            command = json.loads(line)
            name = command.get("command")
            if name == "stop":
                _say({"stopped": True})
                break
            if name == "reset":
                clients.reset()
                _say({"reset": True})
            elif name == "advance":
                created = clients.advance(int(command["most"]), int(command["seed"]))
                _say({"created": created})
            elif name == "stats":
                _say(clients.stats())
            else:
                _say({"error": f"unknown command {name!r}"})
    finally:
        await runner.cleanup()


class FakeClientsProcess:
    """Start ``python -m bench.quota.clients`` and talk to it."""

    def __init__(self, count: int, seed: int, log: Path, latency: float = 0.0) -> None:
        self.count = count
        self.seed = seed
        self.latency = latency
        self.log = log
        self.port = 0
        self.addresses: list[str] = []
        self._process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._log_file: IO[str] | None = None

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def _answer(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise FakeClientsError(f"no answer in {timeout:.0f} s") from None
        if line is None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise FakeClientsError(f"the fake clients' process ended:\n{tail}")
        return json.loads(line)

    def start(self, timeout: float = 120.0) -> FakeClientsProcess:
        self._log_file = self.log.open("w")
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.quota.clients",
                str(self.count),
                str(self.seed),
                str(self.latency),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
            cwd=REPO_ROOT,
        )
        assert self._process.stdout is not None
        threading.Thread(
            target=self._read, args=(self._process.stdout,), daemon=True
        ).start()
        ready = self._answer(timeout)
        self.port = int(ready["port"])
        self.addresses = list(ready["addresses"])
        return self

    def ask(self, command: str, timeout: float = 60.0, **fields: Any) -> dict[str, Any]:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(json.dumps({"command": command, **fields}) + "\n")
        self._process.stdin.flush()
        return self._answer(timeout)

    def url(self, index: int) -> str:
        return f"http://{self.addresses[index]}:{self.port}"

    def stop(self) -> None:
        process = self._process
        if process is None:
            return
        with contextlib.suppress(OSError, ValueError, FakeClientsError):
            if process.poll() is None:
                self.ask("stop", timeout=30)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self._log_file is not None:
            self._log_file.close()
        self._process = None


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))

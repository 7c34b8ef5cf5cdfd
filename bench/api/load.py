"""Drive a fixed number of API requests from client threads and time each one.

Each client thread speaks HTTP/1.1 over a plain socket, keeping the connection
alive while the server does (and connecting anew when it closes): a lean
client, so that on a shared machine the load generator takes as little CPU as
it can from the server it measures (``client_cpu_pct`` says how much it took).
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

HOST = "127.0.0.1"
REQUEST_TIMEOUT = 30.0

# (method, path, body) for the request with a given index.
Job = Callable[[int], tuple[str, str, bytes | None]]


@dataclass
class ThreadTally:
    """What one client thread saw."""

    sent: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    uuids: list[str] = field(default_factory=list)


@dataclass
class Measurement:
    """The outcome of one load phase."""

    requests: int
    seconds: float
    latencies: list[float]
    errors: Counter
    uuids: list[str]

    @property
    def throughput(self) -> float:
        """Answered and failed requests per second of wall time."""
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile_ms(self, fraction: float) -> float:
        """Nearest-rank latency percentile in milliseconds; NaN when none."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(fraction * len(ordered)))
        return ordered[rank - 1] * 1000


class Tickets:
    """A thread-safe ticket dispenser that stops at a limit."""

    def __init__(self, limit: int) -> None:
        """Hand out 0 .. limit - 1."""
        self._next = 0
        self._limit = limit
        self._lock = threading.Lock()

    def take(self) -> int | None:
        """Return the next ticket, or None when all are taken."""
        with self._lock:
            if self._next >= self._limit:
                return None
            ticket = self._next
            self._next += 1
            return ticket


def registration_job(first_site: int) -> Job:
    """Return a job that registers https://site-<n>.example.org."""

    def job(index: int) -> tuple[str, str, bytes | None]:
        body = {
            "url": f"https://site-{first_site + index}.example.org",
            "contact": "Bench",
            "email": "bench@example.org",
            "organisation": "Bench",
        }
        return "POST", "/api/instance/", json.dumps(body).encode()

    return job


def lookup_job(uuids: list[str]) -> Job:
    """Return a job that reads registered instances in turn."""

    def job(index: int) -> tuple[str, str, bytes | None]:
        return "GET", f"/api/instance/{uuids[index % len(uuids)]}", None

    return job


def run_phase(
    port: int,
    job: Job,
    total: int,
    clients: int,
    expect: int,
    stop: threading.Event,
    keep_uuids: bool = False,
) -> Measurement:
    """Send TOTAL requests from CLIENTS threads; count any other status as an error."""
    tickets = Tickets(total)
    tallies = [ThreadTally() for _ in range(clients)]
    threads = [
        threading.Thread(
            target=_client,
            args=(port, job, tickets, expect, tally, stop, keep_uuids),
            daemon=True,
        )
        for tally in tallies
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException:  # Ctrl+C: let the client threads wind down
        stop.set()
        raise
    seconds = time.perf_counter() - started
    return _merge(tallies, seconds)


def _merge(tallies: list[ThreadTally], seconds: float) -> Measurement:
    """Combine the client threads' tallies."""
    latencies: list[float] = []
    errors: Counter = Counter()
    uuids: list[str] = []
    for tally in tallies:
        latencies.extend(tally.latencies)
        errors.update(tally.errors)
        uuids.extend(tally.uuids)
    done = sum(tally.sent for tally in tallies)
    return Measurement(done, seconds, latencies, errors, uuids)


class ProtocolError(Exception):
    """An answer this client does not read (say, a chunked one)."""


class Connection:
    """One kept-alive HTTP/1.1 connection to the server, reopened as needed."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buffer = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buffer = None, b""

    def _receive(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        return chunk

    def request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        """Send one request; answer (status, body)."""
        if self.sock is None:
            self.sock = socket.create_connection((HOST, self.port), REQUEST_TIMEOUT)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = body or b""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
            f"Content-Type: application/json\r\nAccept: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + body)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._receive()
        head_bytes, _, rest = self.buffer.partition(b"\r\n\r\n")
        status = int(head_bytes[9:12])
        headers = head_bytes.lower()
        if b"transfer-encoding: chunked" in headers:
            raise ProtocolError("chunked answer")
        marker = headers.find(b"content-length:")
        if marker < 0:
            raise ProtocolError("no Content-Length")
        length = int(headers[marker + 15 : headers.find(b"\r\n", marker)])
        while len(rest) < length:
            rest += self._receive()
        payload, self.buffer = rest[:length], rest[length:]
        if b"connection: close" in headers:
            self.close()
        return status, payload


def _client(
    port: int,
    job: Job,
    tickets: Tickets,
    expect: int,
    tally: ThreadTally,
    stop: threading.Event,
    keep_uuids: bool,
) -> None:
    """Take tickets and send their requests over one kept-alive connection."""
    conn = Connection(port)
    try:
        while not stop.is_set():
            index = tickets.take()
            if index is None:
                return
            _send(conn, job(index), expect, tally, keep_uuids)
    finally:
        conn.close()


def _send(
    conn: Connection,
    request: tuple[str, str, bytes | None],
    expect: int,
    tally: ThreadTally,
    keep_uuids: bool,
) -> None:
    """Send one request, record its latency and whether it answered as expected."""
    method, path, body = request
    tally.sent += 1
    started = time.perf_counter()
    try:
        status, payload = conn.request(method, path, body)
    except (OSError, ValueError, ProtocolError) as exc:
        conn.close()
        tally.errors[type(exc).__name__] += 1
        return
    tally.latencies.append(time.perf_counter() - started)
    if status != expect:
        tally.errors[f"HTTP {status}"] += 1
    elif keep_uuids:
        try:
            tally.uuids.append(json.loads(payload)["uuid"])
        except (ValueError, KeyError, TypeError):
            tally.errors["no uuid in answer"] += 1

"""Fetch JSON from instances' endpoints: concurrent, bounded, hostile-host proof.

Plain functions and no Flask: ``crawl`` takes targets and settings and yields one
``CrawlOutcome`` per target as soon as it is known. Each target gets at most
``timeout`` seconds for all its endpoints together, so a run lasts about
``len(targets) / concurrency`` round trips plus one timeout, however many hosts hang.
"""

from __future__ import annotations

import asyncio
import json
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
import uvloop
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from tracker.instances.crawled_values import document_problem
from tracker.instances.models import HEALTH_DOWN, HEALTH_UNKNOWN, HEALTH_UP
from tracker.instances.network import (
    AddressNotAllowed,
    NetworkPolicy,
    is_ip_literal,
    storable_address,
)

MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEADLINE_HEADER = "X-Crawl-Deadline"


@dataclass(frozen=True)
class Endpoint:
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CrawlSettings:
    endpoints: tuple[Endpoint, ...]
    timeout: float
    connect_timeout: float
    max_bytes: int
    concurrency: int
    policy: NetworkPolicy
    user_agent: str
    max_depth: int = 32
    max_keys: int = 1000

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CrawlSettings:
        """Build from the application's (validated) settings mapping."""
        return cls(
            endpoints=tuple(
                Endpoint(e["url"], dict(e.get("headers") or {}))
                for e in config["CRAWLING_ENDPOINTS"]
            ),
            timeout=float(config["CRAWL_TIMEOUT"]),
            connect_timeout=float(config["CRAWL_CONNECT_TIMEOUT"]),
            max_bytes=int(config["CRAWL_MAX_BYTES"]),
            concurrency=int(config["CRAWL_CONCURRENCY"]),
            policy=NetworkPolicy.from_settings(
                config["CRAWL_ALLOW_NETWORKS"], config["CRAWL_DENY_NETWORKS"]
            ),
            user_agent=config["CRAWL_USER_AGENT"],
            max_depth=int(config["CRAWL_MAX_DEPTH"]),
            max_keys=int(config["CRAWL_MAX_KEYS"]),
        )


@dataclass(frozen=True)
class Target:
    instance_id: int
    url: str
    # Configured headers may hold tokens: only approved instances receive them.
    send_headers: bool = True


@dataclass(frozen=True)
class EndpointResult:
    path: str
    data: dict[str, Any] | None
    status: int | None
    error: str
    size: int = 0  # bytes of the answer's body

    @property
    def ok(self) -> bool:
        return self.data is not None


@dataclass(frozen=True)
class CrawlOutcome:
    instance_id: int
    started: datetime
    duration_ms: int
    health: str
    status: int | None
    error: str
    results: tuple[EndpointResult, ...]
    address: str | None
    skipped: bool = False


class FetchError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PolicyResolver(AbstractResolver):
    """Resolve with the system resolver, drop refused addresses, remember the rest."""

    def __init__(self, policy: NetworkPolicy) -> None:
        self.policy = policy
        self.inner = ThreadedResolver()
        self.addresses: dict[str, str] = {}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        allowed = [r for r in results if self.policy.refusal(r["host"]) is None]
        if not allowed:
            raise AddressNotAllowed(self.policy.refusal(results[0]["host"]))
        self.addresses.setdefault(host.rstrip("."), allowed[0]["host"])
        return allowed

    async def close(self) -> None:
        await self.inner.close()


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    if response.content_length is not None and response.content_length > max_bytes:
        raise FetchError(f"response larger than {max_bytes} bytes", response.status)
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body.extend(chunk)
        if len(body) > max_bytes:
            raise FetchError(f"response larger than {max_bytes} bytes", response.status)
    return bytes(body)


LONG_DIGITS = re.compile(rb"\d{20}")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_object(
    body: bytes, status: int, max_depth: int = 32, max_keys: int = 1000
) -> dict[str, Any]:
    try:
        # orjson refuses NaN and Infinity too, several times faster. What it
        # refuses (lone surrogates, deep nesting) or would read otherwise (an
        # integer of 20 digits or more becomes a float) is read as the
        # standard library reads it, so that the checks below say why.
        if LONG_DIGITS.search(body):
            raise orjson.JSONDecodeError("long integer", "", 0)
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            # NaN and Infinity are not JSON; stored, they would break both
            # databases.
            data = json.loads(body, parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            raise FetchError("response is not valid JSON", status) from None
    if not isinstance(data, dict):
        raise FetchError(
            f"response is JSON but not an object ({type(data).__name__})", status
        )
    problem = document_problem(data, max_depth, max_keys)
    if problem is not None:
        raise FetchError(f"response refused: {problem}", status)
    return data


async def _fetch(
    session: aiohttp.ClientSession,
    url: str,
    headers: Mapping[str, str],
    deadline: float,
    settings: CrawlSettings,
    want_json: bool,
) -> tuple[dict[str, Any], int, int]:
    """GET ``url``, following same-origin redirects only; return (object,
    status, size of the body)."""
    current = URL(url)
    origin = current.origin()
    for _ in range(MAX_REDIRECTS + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError(f"timed out after {settings.timeout:g} s")
        timeout = aiohttp.ClientTimeout(
            total=remaining, connect=min(settings.connect_timeout, remaining)
        )
        async with session.get(
            current, headers=headers, timeout=timeout, allow_redirects=False
        ) as response:
            status = response.status
            if status in REDIRECT_STATUSES and "Location" in response.headers:
                following = current.join(URL(response.headers["Location"]))
                if following.origin() != origin:
                    raise FetchError(
                        f"redirect to another host ({following.host}) not followed",
                        status,
                    )
                current = following
                continue
            if not 200 <= status < 300:
                raise FetchError(f"HTTP {status}", status)
            body = await _read_capped(response, settings.max_bytes)
            if not want_json:
                return {}, status, len(body)
            data = _parse_object(body, status, settings.max_depth, settings.max_keys)
            return data, status, len(body)
    raise FetchError(f"more than {MAX_REDIRECTS} redirects")


def _describe(exc: BaseException, settings: CrawlSettings) -> tuple[str, bool]:
    """Return (error text, refused by policy) for an exception from a fetch."""
    if isinstance(exc, FetchError):
        return str(exc), False
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return f"timed out after {settings.timeout:g} s", False
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, AddressNotAllowed):
            return str(os_error), True
        if isinstance(os_error, socket.gaierror):
            return f"cannot resolve host {exc.host}", False
        return f"cannot connect: {os_error.strerror or os_error}", False
    if isinstance(exc, aiohttp.TooManyRedirects):
        return "too many redirects", False
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "response body was cut off or malformed", False
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"malformed HTTP response: {exc.message}", False
    if isinstance(exc, aiohttp.ClientError | OSError | UnicodeError | ValueError):
        return f"{type(exc).__name__}: {exc}"[:300], False
    raise exc


async def crawl_instance(
    session: aiohttp.ClientSession,
    target: Target,
    settings: CrawlSettings,
    resolver: PolicyResolver,
) -> CrawlOutcome:
    """Fetch every endpoint of one instance within one shared deadline."""
    started = datetime.now(UTC)
    begin = time.monotonic()
    deadline = begin + settings.timeout
    host = URL(target.url).host or ""

    def outcome(results, health, error, skipped=False):
        statuses = [r.status for r in results if r.status is not None]
        failing = [r.status for r in results if not r.ok and r.status is not None]
        return CrawlOutcome(
            instance_id=target.instance_id,
            started=started,
            duration_ms=round((time.monotonic() - begin) * 1000),
            health=health,
            status=(failing or statuses or [None])[0],
            error=error,
            results=tuple(results),
            address=storable_address(
                host
                if is_ip_literal(host)
                else resolver.addresses.get(host.rstrip("."))
            ),
            skipped=skipped,
        )

    if is_ip_literal(host):
        refusal = settings.policy.refusal(host)
        if refusal is not None:
            return outcome([], HEALTH_UNKNOWN, refusal, skipped=True)

    endpoints = settings.endpoints or (Endpoint(""),)
    want_json = bool(settings.endpoints)
    wall_deadline = started + timedelta(seconds=settings.timeout)
    results = []
    for position, endpoint in enumerate(endpoints, 1):
        configured = endpoint.headers if target.send_headers else {}
        headers = {**configured, DEADLINE_HEADER: wall_deadline.isoformat()}
        if position == len(endpoints):
            # Every instance is another host: a kept-alive connection would only
            # hold a file descriptor until the end of the run.
            headers["Connection"] = "close"
        try:
            data, status, size = await _fetch(
                session,
                target.url + endpoint.path,
                headers,
                deadline,
                settings,
                want_json,
            )
            results.append(EndpointResult(endpoint.path, data, status, "", size))
        except Exception as exc:
            message, refused = _describe(exc, settings)
            if refused:
                return outcome(results, HEALTH_UNKNOWN, message, skipped=True)
            status = exc.status if isinstance(exc, FetchError) else None
            results.append(EndpointResult(endpoint.path, None, status, message))

    failures = [r for r in results if not r.ok]
    error = "; ".join(f"{r.path or '/'}: {r.error}" for r in failures)
    health = HEALTH_UP if len(failures) < len(results) else HEALTH_DOWN
    return outcome(results, health, error)


async def _crawl_all(
    targets: Iterable[Target],
    settings: CrawlSettings,
    emit: Callable[[CrawlOutcome], None],
) -> None:
    resolver = PolicyResolver(settings.policy)
    connector = aiohttp.TCPConnector(
        limit=settings.concurrency,
        resolver=resolver,
        ttl_dns_cache=300,
        force_close=False,
    )
    semaphore = asyncio.Semaphore(settings.concurrency)
    # A hard stop a little after the deadline, in case a read ignores its timeout.
    hard_limit = settings.timeout + 1.0

    async def one(target: Target) -> None:
        async with semaphore:
            try:
                async with asyncio.timeout(hard_limit):
                    result = await crawl_instance(session, target, settings, resolver)
            except TimeoutError:
                result = CrawlOutcome(
                    target.instance_id,
                    datetime.now(UTC),
                    round(hard_limit * 1000),
                    HEALTH_DOWN,
                    None,
                    f"timed out after {settings.timeout:g} s",
                    (),
                    None,
                )
        emit(result)

    async with aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": settings.user_agent, "Accept": "application/json"},
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
    ) as session:
        await asyncio.gather(*(one(target) for target in targets))


_FINISHED = object()


def crawl(
    targets: Iterable[Target], settings: CrawlSettings, idle_tick: float = 1.0
) -> Iterator[CrawlOutcome | None]:
    """Crawl ``targets``; yield each outcome when ready, and None after ``idle_tick``
    seconds without one, so the caller can beat a heart while hosts hang."""
    results: queue.Queue = queue.Queue()
    targets = list(targets)

    def run() -> None:
        try:
            # uvloop: the same asyncio, with less CPU per connection and read.
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(_crawl_all(targets, settings, results.put))
        except BaseException as exc:  # handed to the consuming thread
            results.put(exc)
        finally:
            results.put(_FINISHED)

    thread = threading.Thread(target=run, name="crawler", daemon=True)
    thread.start()
    while True:
        try:
            item = results.get(timeout=idle_tick)
        except queue.Empty:
            yield None
            continue
        if item is _FINISHED:
            break
        if isinstance(item, BaseException):
            raise item
        yield item
    thread.join()

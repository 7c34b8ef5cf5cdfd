"""A fleet of fake instances: real HTTP servers on distinct loopback addresses.

Every address in 127.0.0.0/8 is this machine, so one process can play thousands of
distinct hosts, each with its own behaviour: fast, slow, hanging, broken, hostile.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.services import free_port


@dataclass(frozen=True)
class Behaviour:
    """How one fake instance answers: ``kind`` picks the answer, after ``delay``."""

    kind: str = "json"
    delay: float = 0.0
    data: Mapping[str, Any] = field(default_factory=dict)
    status: int = 200
    size: int = 0
    location: str = ""
    body: bytes = b""  # what RAW answers, as application/json
    # Per-path overrides: {"/stats": Behaviour(kind="status", status=500)}
    paths: Mapping[str, Behaviour] = field(default_factory=dict)


JSON = "json"
STATUS = "status"
TEXT = "text"
ARRAY = "array"
HUGE = "huge"
HANG = "hang"
REDIRECT = "redirect"
DRIP = "drip"
RAW = "raw"


@dataclass
class SeenRequest:
    address: str
    path: str
    headers: dict[str, str]


class Fleet:
    """Serve ``behaviours`` ({address: Behaviour}) on one port of many addresses."""

    def __init__(self, behaviours: Mapping[str, Behaviour], port: int | None = None):
        self.behaviours = dict(behaviours)
        self.port = port or free_port(next(iter(self.behaviours), "127.0.0.1"))
        self.seen: list[SeenRequest] = []
        self.record = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None

    def url(self, address: str) -> str:
        return f"http://{address}:{self.port}"

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        address = request.transport.get_extra_info("sockname")[0]
        if self.record:
            self.seen.append(SeenRequest(address, request.path, dict(request.headers)))
        behaviour = self.behaviours[address]
        behaviour = behaviour.paths.get(request.path, behaviour)
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        kind = behaviour.kind
        if kind == JSON:
            return web.json_response(dict(behaviour.data) or {"path": request.path})
        if kind == STATUS:
            return web.json_response({"error": "x"}, status=behaviour.status)
        if kind == TEXT:
            return web.Response(text="<html>not json</html>", content_type="text/html")
        if kind == ARRAY:
            return web.json_response([1, 2, 3])
        if kind == RAW:
            return web.Response(body=behaviour.body, content_type="application/json")
        if kind == REDIRECT:
            raise web.HTTPFound(behaviour.location)
        if kind == HANG:
            await self._stopping.wait()
            return web.Response(status=503)
        if kind in (HUGE, DRIP):
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            await response.write(b'{"padding": "')
            chunk = b"x" * (64 * 1024 if kind == HUGE else 1)
            for _ in range(behaviour.size // len(chunk)):
                await response.write(chunk)
                if kind == DRIP:
                    await asyncio.sleep(0.5)
                if self._stopping.is_set():
                    break
            await response.write(b'"}')
            return response
        raise AssertionError(f"unknown behaviour {kind}")

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        for address in self.behaviours:
            await web.TCPSite(self._runner, address, self.port, backlog=1024).start()
        self._ready.set()
        await self._stopping.wait()
        await self._runner.cleanup()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    def start(self) -> Fleet:
        self._thread = threading.Thread(target=self._run, name="fleet", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=60)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

"""Check-in throughput: many field clients asking the controller for ceilings.

The controller (``create_app`` on a SQLite file) is served by werkzeug's threaded
server on loopback; ``threads`` workers post check-ins for ``clients`` distinct
clients, each one's state as its blueprint would report it. The baseline, in the
same run: the same posts with a wrong secret (refused after the body is read and
the client looked up: the HTTP, JSON and lookup cost without the ledger work).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from quota.models import ControllerQuota
from tracker.extensions import db

KIND = "visit"


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        """Log nothing per request: a thousand lines would cost what is measured."""


def _serve(app: Flask):
    server = make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return server, thread, f"http://127.0.0.1:{server.server_port}"


def _clients(app: Flask, quota_id: int) -> list[tuple[str, str]]:
    with app.app_context():
        quota = db.session.get(ControllerQuota, quota_id)
        found = [(c.name, c.secret) for c in quota.clients]
        db.session.remove()
    return found


def _round(url: str, clients, threads: int, wrong_secret: bool) -> dict[str, Any]:
    local = threading.local()

    def post(client: tuple[str, str]) -> int:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        name, secret = client
        body = {
            "client": name,
            "record_kind": KIND,
            "count": 0,
            "ceiling": 0,
            "window_start": 0,
            "window_expires": 0,
            "used_overrides": [],
            "clock": int(time.time()),
        }
        response = session.post(
            f"{url}/api/quotas/{KIND}/checkin",
            json=body,
            headers={"Authorization": f"Bearer {'x' if wrong_secret else secret}"},
            timeout=60,
        )
        return response.status_code

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        statuses = list(pool.map(post, clients))
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "per_s": len(clients) / seconds,
        "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
    }


def measure(app: Flask, quota_id: int, threads: int) -> dict[str, Any]:
    """Every client checks in once (first: no ceiling yet), then once more, and
    the baseline round with a wrong secret."""
    clients = _clients(app, quota_id)
    server, thread, url = _serve(app)
    try:
        baseline = _round(url, clients, threads, wrong_secret=True)
        first = _round(url, clients, threads, wrong_secret=False)
        second = _round(url, clients, threads, wrong_secret=False)
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
    with app.app_context():
        quota = db.session.get(ControllerQuota, quota_id)
        held = sum(max(c.acknowledged, c.pending or 0) for c in quota.clients)
        target = quota.target
        db.session.remove()
    return {
        "clients": len(clients),
        "threads": threads,
        "baseline_wrong_secret": baseline,
        "first": first,
        "second": second,
        "held_after": held,
        "target": target,
        "ratio_first": baseline["per_s"] / first["per_s"],
        "ratio_second": baseline["per_s"] / second["per_s"],
    }

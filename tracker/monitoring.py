"""Health, readiness and Prometheus metrics.

``/healthz`` says the process answers; ``/readyz`` that the database and the
broker can be reached (503 otherwise); ``/metrics`` serves Prometheus metrics
to the networks of ``METRICS_ALLOW_NETWORKS`` only. Request counts and latency
are measured here; what is kept in the database (instances by health, sync
lag, quota use, ...) is read at scrape time by collectors that each part of
the application adds with :func:`add_metrics`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from collections.abc import Callable, Iterable

from flask import Blueprint, Flask, Response, abort, current_app, g, jsonify, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from tracker.auth.roles import PUBLIC, blueprint_access
from tracker.extensions import csrf, db

log = logging.getLogger(__name__)

bp = Blueprint("monitoring", __name__)
blueprint_access(bp, read=PUBLIC, write=PUBLIC)
csrf.exempt(bp)

COLLECTORS_KEY = "tracker.metric_collectors"
REQUEST_METRICS_KEY = "tracker.request_metrics"
# gunicorn.conf.py sets it: every worker process then counts into shared files.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
BROKER_TIMEOUT_SECONDS = 3.0
MONITORING_PATHS = ("/healthz", "/readyz", "/metrics")

# What a part of the application adds: read its figures with a session.
Collect = Callable[[Session], Iterable[Metric]]


def add_metrics(app: Flask, collect: Collect) -> None:
    """Add metric families that ``collect`` reads from the database at scrape time."""
    app.extensions.setdefault(COLLECTORS_KEY, []).append(collect)


class _Families:
    """A registry-like holder of families already read, for ``generate_latest``."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


class RequestMetrics:
    """One app's request counter and latency histogram, labelled by route."""

    def __init__(self) -> None:
        # Unregistered: every app (tests build many) keeps its own registry.
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tracker_http_requests",
            "HTTP requests answered, by method, route and status.",
            ("method", "route", "status"),
            registry=None,
        )
        self.latency = Histogram(
            "tracker_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route.",
            ("method", "route"),
            registry=None,
        )
        if os.environ.get(MULTIPROCESS_ENV):
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(self.registry)
        else:
            self.registry.register(self.requests)
            self.registry.register(self.latency)


def _route() -> str:
    # The rule, never the path: paths hold instance uuids, and are unbounded.
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


def _allowed(address: str | None, networks: Iterable[str]) -> bool:
    try:
        client = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if client.version == 6 and client.ipv4_mapped:
        client = client.ipv4_mapped
    return any(
        client in ipaddress.ip_network(network, strict=False) for network in networks
    )


@bp.get("/healthz")
def healthz():
    """Answer 200 while the process serves requests."""
    return jsonify({"status": "ok"})


def _database_problem() -> str | None:
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means: not ready
        db.session.rollback()
        return f"database unreachable: {type(exc).__name__}"
    return None


def _broker_problem() -> str | None:
    celery_app = current_app.extensions["celery"]
    try:
        with celery_app.connection_for_write(
            connect_timeout=BROKER_TIMEOUT_SECONDS
        ) as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=5)
    except Exception as exc:  # any failure means: not ready
        return f"broker unreachable: {type(exc).__name__}"
    return None


@bp.get("/readyz")
def readyz():
    """Answer 200 when the database and the broker answer, 503 naming which not."""
    problems = [p for p in (_database_problem(), _broker_problem()) if p]
    if problems:
        response = jsonify({"status": "unavailable", "problems": problems})
        response.status_code = 503
        response.headers["Retry-After"] = "10"
        return response
    return jsonify({"status": "ok"})


@bp.get("/metrics")
def metrics():
    """Serve the Prometheus metrics to the allowed networks only."""
    if not _allowed(request.remote_addr, current_app.config["METRICS_ALLOW_NETWORKS"]):
        abort(403, description="metrics are not served to this address")
    measured = current_app.extensions[REQUEST_METRICS_KEY]
    families: list[Metric] = []
    for collect in current_app.extensions.get(COLLECTORS_KEY, []):
        try:
            families.extend(collect(db.session))
        except Exception:  # one failing part must not hide the others' figures
            db.session.rollback()
            log.exception("a metrics collector failed")
    body = generate_latest(measured.registry) + generate_latest(_Families(families))
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def batch_metrics(session: Session) -> Iterable[Metric]:
    """Batch operations by type, status and result."""
    from tracker.batch.models import BatchOperation

    family = GaugeMetricFamily(
        "tracker_batch_operations",
        "Batch operations kept, by type, status and result.",
        labels=("type", "status", "result"),
    )
    rows = session.execute(
        select(
            BatchOperation.operation_type,
            BatchOperation.status,
            BatchOperation.result,
            func.count(),
        ).group_by(
            BatchOperation.operation_type, BatchOperation.status, BatchOperation.result
        )
    )
    for operation_type, status, result, count in rows:
        family.add_metric((operation_type, status, result), count)
    yield family


def init_app(app: Flask) -> None:
    measured = RequestMetrics()
    app.extensions[REQUEST_METRICS_KEY] = measured
    app.register_blueprint(bp)
    add_metrics(app, batch_metrics)

    @app.before_request
    def start_clock() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def count_request(response: Response) -> Response:
        started = g.pop("request_started", None)
        if started is not None and request.path not in MONITORING_PATHS:
            route, method = _route(), request.method
            measured.requests.labels(method, route, str(response.status_code)).inc()
            measured.latency.labels(method, route).observe(
                time.perf_counter() - started
            )
        return response

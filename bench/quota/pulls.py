"""One pull over many fake clients: ``run_pull`` against a sequential naive loop."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from sqlalchemy import event

from quota.controller import HttpTransport, Policy, committed_total
from quota.models import ControllerQuota, QuotaClient
from quota.planning import ClientState, plan
from quota.pulls import run_pull
from tracker import create_app
from tracker.batch.models import BatchOperation
from tracker.db_types import utcnow
from tracker.extensions import db
from tracker.models import import_all_models

KIND = "visit"
RATE_SMOOTHING = 0.5
MIN_HOURS = 1 / 60


class TimedTransport(HttpTransport):
    """HttpTransport that notes when each call started and ended."""

    def __init__(self, timeout: float, concurrency: int) -> None:
        super().__init__(timeout, concurrency)
        self.calls: list[tuple[str, float, float]] = []

    async def _request(self, session, method, client, kind, body) -> dict:
        start = time.perf_counter()
        try:
            return await super()._request(session, method, client, kind, body)
        finally:
            self.calls.append((method, start, time.perf_counter()))


@dataclass
class SqlCounter:
    """Statements, their time and commits on one engine while counting."""

    statements: int = 0
    seconds: float = 0.0
    commits: int = 0
    commit_seconds: float = 0.0
    _started: dict[int, float] = field(default_factory=dict)
    _commit_started: float = 0.0

    def before(self, conn, cursor, statement, parameters, context, many) -> None:
        self._started[id(cursor)] = time.perf_counter()

    def after(self, conn, cursor, statement, parameters, context, many) -> None:
        self.statements += 1
        self.seconds += time.perf_counter() - self._started.pop(id(cursor), 0.0)

    def before_commit(self, session) -> None:
        self._commit_started = time.perf_counter()

    def after_commit(self, session) -> None:
        self.commits += 1
        self.commit_seconds += time.perf_counter() - self._commit_started


@contextmanager
def counting_sql(engine: Any, session: Any) -> Iterator[SqlCounter]:
    """Count statements on ``engine``; time the commits of ``session``."""
    counter = SqlCounter()
    hooks = (
        (engine, "before_cursor_execute", counter.before),
        (engine, "after_cursor_execute", counter.after),
        (session, "before_commit", counter.before_commit),
        (session, "after_commit", counter.after_commit),
    )
    for target, name, hook in hooks:
        event.listen(target, name, hook)
    try:
        yield counter
    finally:
        for target, name, hook in hooks:
            event.remove(target, name, hook)


def controller_app(directory: Path) -> Flask:
    """The tracker on a SQLite file in ``directory``, tables created."""
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{directory / 'controller.sqlite'}",
            "SECRET_KEY": "bench-quota",
        },
        instance_path=directory / "instance",
        environ={},
    )
    with app.app_context():
        import_all_models()
        db.create_all()
    return app


def add_quota(app: Flask, clients: list[tuple[str, str]], target: int) -> int:
    """A visit quota, open now, with one QuotaClient per (url, secret)."""
    with app.app_context():
        now = utcnow()
        quota = ControllerQuota(
            record_kind=KIND,
            target=target,
            window_start=now - timedelta(hours=1),
            window_expires=now + timedelta(days=30),
        )
        for index, (url, secret) in enumerate(clients):
            quota.clients.append(
                QuotaClient(name=f"clinic-{index + 1}", endpoint=url, secret=secret)
            )
        db.session.add(quota)
        db.session.commit()
        return quota.id


def _phases(start: float, end: float, calls: list[tuple[str, float, float]]):
    """Where the wall time of one pull went, from the transport's call times."""
    gets = [(s, e) for method, s, e in calls if method == "GET"]
    puts = [(s, e) for method, s, e in calls if method == "PUT"]
    phases: dict[str, float] = {}
    last = start
    if gets:
        phases["before_gets_s"] = gets[0][0] - start
        phases["gets_wall_s"] = max(e for _, e in gets) - min(s for s, _ in gets)
        last = max(e for _, e in gets)
    if puts:
        phases["gets_to_first_put_s"] = min(s for s, _ in puts) - last
        phases["puts_wall_s"] = max(e for _, e in puts) - min(s for s, _ in puts)
        phases["puts_http_s"] = sum(e - s for s, e in puts)
        phases["puts_between_s"] = phases["puts_wall_s"] - phases["puts_http_s"]
        last = max(e for _, e in puts)
    phases["after_calls_s"] = end - last
    return phases


def pull_ours(app: Flask, quota_id: int, timeout: float) -> dict[str, Any]:
    """Time one ``run_pull`` of the quota with an HTTP transport."""
    with app.app_context():
        quota = db.session.get(ControllerQuota, quota_id)
        with (
            TimedTransport(timeout, app.config["QUOTA_PULL_CONCURRENCY"]) as transport,
            counting_sql(db.engine, db.session) as sql,
        ):
            start, cpu = time.perf_counter(), time.process_time()
            operation_id, summary = run_pull(
                db.session,
                quota,
                transport,
                db.session.commit,
                policy=Policy.from_config(app.config),
            )
            end, cpu = time.perf_counter(), time.process_time() - cpu
        operation = db.session.get(BatchOperation, operation_id)
        result = {
            "seconds": end - start,
            "cpu_seconds": cpu,
            "reached": summary.reached if summary else 0,
            "unreachable": summary.unreachable if summary else 0,
            "changed": summary.changed if summary else 0,
            "operation_result": operation.result if operation else None,
            "controller_committed_total": committed_total(db.session, quota),
            "controller_acknowledged_sum": sum(c.acknowledged for c in quota.clients),
            "calls": {
                "get": sum(m == "GET" for m, _, _ in transport.calls),
                "put": sum(m == "PUT" for m, _, _ in transport.calls),
            },
            "sql": {
                "statements": sql.statements,
                "seconds": sql.seconds,
                "commits": sql.commits,
                "commit_seconds": sql.commit_seconds,
            },
            "phases": _phases(start, end, transport.calls),
        }
        db.session.remove()
    return result


class NaivePuller:
    """One client at a time with ``requests``: GET every client, then PUT changes."""

    # Ceilings come from the same arithmetic (quota.planning.plan, same rate
    # smoothing), so both ways make the same HTTP calls; no records are kept.

    def __init__(
        self,
        clients: list[tuple[str, str]],
        target: int,
        window: tuple[int, int],
        timeout: float,
        policy: Policy | None = None,
    ) -> None:
        self.policy = policy or Policy()
        self.clients = clients
        self.target = target
        self.window = window
        self.timeout = timeout
        self.last: dict[int, tuple[int, float]] = {}
        self.rates = [0.0] * len(clients)

    def _request(self, method: str, index: int, body: Any = None) -> Any:
        url, secret = self.clients[index]
        try:
            response = requests.request(
                method,
                f"{url}/quota/{KIND}",
                json=body,
                headers={"Authorization": f"Bearer {secret}"},
                timeout=self.timeout,
                allow_redirects=False,
            )
            return response.status_code, response.json()
        except (requests.RequestException, ValueError):
            return None, None

    def pull(self) -> dict[str, Any]:
        start = time.perf_counter()
        reports: list[dict[str, Any] | None] = []
        for index in range(len(self.clients)):
            status, data = self._request("GET", index)
            reports.append(data if status == 200 and isinstance(data, dict) else None)
        gets_done = time.perf_counter()
        now = time.monotonic()
        states, ceilings = [], {}
        for index, report in enumerate(reports):
            if report is None:
                known = self.last.get(index, (0, now))[0]
                states.append(ClientState(index, False, known, known, 0.0))
                continue
            count, ceiling = int(report["count"]), int(report["ceiling"])
            if index in self.last:
                before, when = self.last[index]
                hours = max((now - when) / 3600, MIN_HOURS)
                recent = max(0, count - before) / hours
                self.rates[index] = (
                    RATE_SMOOTHING * recent + (1 - RATE_SMOOTHING) * self.rates[index]
                )
            self.last[index] = (count, now)
            ceilings[index] = ceiling
            states.append(ClientState(index, True, count, ceiling, self.rates[index]))
        desired = plan(
            self.target,
            states,
            reserve=self.policy.reserve_for(self.target),
            floor=self.policy.floor,
        )
        lower = [i for i in desired if desired[i] < ceilings[i]]
        higher = [i for i in desired if desired[i] > ceilings[i]]
        refused = failed = 0
        for index in lower + higher:
            body = {
                "ceiling": desired[index],
                "window_start": self.window[0],
                "window_expires": self.window[1],
            }
            status, _data = self._request("PUT", index, body)
            refused += status == 409
            failed += status not in (200, 409)
        end = time.perf_counter()
        return {
            "seconds": end - start,
            "reached": len(ceilings),
            "unreachable": len(reports) - len(ceilings),
            "calls": {"get": len(reports), "put": len(lower) + len(higher)},
            "refused": refused,
            "failed": failed,
            "phases": {
                "gets_wall_s": gets_done - start,
                "puts_wall_s": end - gets_done,
            },
        }


def quota_window(app: Flask, quota_id: int) -> tuple[int, int]:
    """The quota's window as Unix times, as the controller sends it."""
    with app.app_context():
        quota = db.session.get(ControllerQuota, quota_id)
        window = (
            int(quota.window_start.timestamp()),
            int(quota.window_expires.timestamp()),
        )
        db.session.remove()
    return window

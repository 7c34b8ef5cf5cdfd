"""The three ways of getting transactions applied that the benchmark times."""

from __future__ import annotations

import json
import math
import os
import resource
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select

from sync.client.transfer import HttpTransport, Retry, push_url, send_bundle
from sync.deliveries import DeliverySettings, apply_all, import_file
from sync.models import SyncProducer, SyncRecord
from sync.wire.bundles import Bundle
from sync.wire.payloads import canonical_json
from tracker.db_types import utcnow
from tracker.extensions import db

PUSH_TIMEOUT = 600.0
PUSH_RETRY = Retry(attempts=4, first_delay=0.5, max_delay=4.0)


def cpu_times() -> tuple[int, int] | None:
    """(all, idle) machine CPU ticks from /proc/stat; None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(n) for n in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return sum(fields), fields[3] + fields[4]


def group_cpu_seconds(group: int) -> float:
    """CPU time used so far by the live processes of process group GROUP."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command may hold spaces: the fields that follow it are fixed.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU time this process has used so far (the in-process side, clients too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Meter:
    """Wall time, machine CPU use and load average over one measured stretch."""

    seconds: float = 0.0
    cpu_busy_pct: float = math.nan
    own_cpu_pct: float = math.nan
    own_cpu_seconds: float = 0.0
    load_1min: float = math.nan
    _start: float = 0.0
    _cpu: tuple[int, int] | None = None
    _own: float = 0.0

    def __enter__(self) -> Meter:
        self._cpu, self._own = cpu_times(), own_cpu_seconds()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self._start
        after = cpu_times()
        if self._cpu and after and after[0] > self._cpu[0]:
            total = after[0] - self._cpu[0]
            self.cpu_busy_pct = 100 - 100 * (after[1] - self._cpu[1]) / total
        cpus = os.cpu_count() or 1
        self.own_cpu_seconds = own_cpu_seconds() - self._own
        self.own_cpu_pct = 100 * self.own_cpu_seconds / max(self.seconds, 1e-9) / cpus
        self.load_1min = os.getloadavg()[0]

    def as_dict(self) -> dict[str, float]:
        return {
            "seconds": round(self.seconds, 3),
            "cpu_busy_pct": round(self.cpu_busy_pct, 1),
            "this_process_cpu_pct": round(self.own_cpu_pct, 1),
            "this_process_cpu_s": round(self.own_cpu_seconds, 2),
            "load_1min_at_end": round(self.load_1min, 2),
        }


class CountingTransport(HttpTransport):
    """HttpTransport that counts its posts and the answers that were not 200."""

    def __init__(self, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.posts = 0
        self.not_ok: list[int] = []
        self.seconds = 0.0

    def post(self, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.posts += 1
        started = time.perf_counter()
        try:
            status, reply = super().post(url, body)
        finally:
            self.seconds += time.perf_counter() - started
        if status != 200:
            self.not_ok.append(status)
        return status, reply


@dataclass
class ProducerPush:
    """What one producer's pushing thread saw."""

    bundles: int = 0
    posts: int = 0
    not_ok: list[int] = field(default_factory=list)
    parked: int = 0
    quarantined: int = 0
    applied: int = 0
    last_applied_through: int = 0
    error: str = ""
    finished: float = 0.0


def push_all(base_url: str, bundles: dict[str, list[Bundle]]) -> dict[str, Any]:
    """Every producer pushes its bundles in order, all producers at once, each
    from its own thread with its own HTTP connection; answer when all are done."""
    url = push_url(base_url)
    outcomes = {producer: ProducerPush() for producer in bundles}
    ready = threading.Barrier(len(bundles) + 1)

    def work(producer: str) -> None:
        outcome = outcomes[producer]
        transport = CountingTransport(PUSH_TIMEOUT)
        ready.wait()
        try:
            for bundle in bundles[producer]:
                reply = send_bundle(transport, url, bundle, PUSH_RETRY)
                outcome.bundles += 1
                outcome.applied += reply.get("applied", 0)
                outcome.parked += reply.get("parked", 0)
                outcome.quarantined += len(reply.get("quarantined", []))
                outcome.last_applied_through = reply.get("applied_through", 0)
        except Exception as exc:
            outcome.error = f"{type(exc).__name__}: {exc}"
        finally:
            outcome.posts = transport.posts
            outcome.not_ok = transport.not_ok
            outcome.finished = time.perf_counter()
            transport.session.close()

    threads = [
        threading.Thread(target=work, args=(producer,), name=f"push-{producer}")
        for producer in bundles
    ]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return {
        "started": started,
        "producers": outcomes,
        "first_done_s": min(o.finished for o in outcomes.values()) - started,
        "last_done_s": max(o.finished for o in outcomes.values()) - started,
    }


def catch_up(app: Flask) -> dict[str, Any] | None:
    """Apply what the pushes left received but not applied (what beat would do)."""
    with app.app_context():
        totals = apply_all(
            db.session, DeliverySettings.from_config(app.config), db.session.commit
        )
        db.session.remove()
    return vars(totals) if totals else None


def import_files(app: Flask, paths: list[Path]) -> list[dict[str, Any]]:
    """Import each bundle file in turn, in-process, as ``sync import`` does."""
    replies = []
    with app.app_context():
        settings = DeliverySettings.from_config(app.config)
        for path in paths:
            reply = import_file(
                db.session,
                path,
                settings,
                db.session.commit,
                app.config["SYNC_MAX_FILE_BYTES"],
            )
            kept = ("producer", "new", "applied", "parked", "applied_through")
            replies.append(
                {key: reply[key] for key in kept}
                | {"quarantined": len(reply["quarantined"])}
            )
        db.session.remove()
    return replies


def naive_apply(app: Flask, streams: list[list[dict[str, Any]]]) -> int:
    """Apply each transaction on its own: look the record up by (model, natural
    key), insert, update or delete it with the ORM, move the producer's cursor,
    commit. Nothing is stored about the transaction itself and nothing is
    verified: the baseline does less than the real path. Answer the count."""
    applied = 0
    with app.app_context():
        session = db.session
        producers = dict(
            session.execute(select(SyncProducer.producer_id, SyncProducer.id)).all()
        )
        for stream in streams:
            for transaction in stream:
                _naive_one(session, producers[transaction["producer"]], transaction)
                applied += 1
        session.remove()
    return applied


def _naive_one(session: Any, producer_id: int, transaction: dict[str, Any]) -> None:
    payload = json.loads(transaction["payload"])
    model = transaction["model"]
    natural_key = canonical_json(transaction["natural_key"])
    previous = payload.get("previous_natural_key")
    lookup = canonical_json(previous) if previous else natural_key
    record = session.scalar(
        select(SyncRecord).where(
            SyncRecord.model == model, SyncRecord.natural_key == lookup
        )
    )
    now = utcnow()
    if transaction["action"] == "delete":
        if record is not None:
            session.delete(record)
    elif record is None:
        session.add(
            SyncRecord(
                model=model,
                natural_key=natural_key,
                fields=payload["fields"],
                parents=payload.get("parents", {}),
                schema_version=transaction["schema_version"],
                version=1,
                producer_id=producer_id,
                sequence=transaction["sequence"],
                created=now,
                updated=now,
            )
        )
    else:
        record.natural_key = natural_key
        record.fields = payload["fields"]
        record.parents = payload.get("parents", {})
        record.schema_version = transaction["schema_version"]
        record.version += 1
        record.producer_id = producer_id
        record.sequence = transaction["sequence"]
        record.updated = now
    producer = session.get(SyncProducer, producer_id)
    producer.applied_through = transaction["sequence"]
    session.commit()

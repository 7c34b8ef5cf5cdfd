"""Insert cost of QuotaMixin: the same insert with and without its quota UPDATE."""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Mapped, mapped_column

from tests.quota.field_app import Quota, Visit, create_field_app, field_db

CEILING = 2_000_000_000
WARMUP = 50
ROUNDS = 10
WINDOW_SECONDS = 30 * 86400


class PlainVisit(field_db.Model):
    """Visit without QuotaMixin: the same table shape, no quota UPDATE."""

    __tablename__ = "plain_visits"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(default="")


def _insert(model: type, count: int, times: list[float]) -> None:
    """Insert ``count`` rows, each its own committed transaction, timing each."""
    session = field_db.session
    for _ in range(count):
        start = time.perf_counter()
        session.add(model())
        session.commit()
        times.append(time.perf_counter() - start)


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "mean_us": statistics.fmean(ordered) * 1e6,
        "median_us": statistics.median(ordered) * 1e6,
        "p90_us": ordered[int(len(ordered) * 0.9)] * 1e6,
    }


def measure(database_url: str, inserts: int) -> dict[str, Any]:
    """Time ``inserts`` Visit and PlainVisit inserts, alternating blocks of each."""
    app = create_field_app(database_url, "bench", "bench-secret")
    with app.app_context():
        try:
            now = int(time.time())
            field_db.session.add(
                Quota(
                    record_kind="visit",
                    ceiling=CEILING,
                    count=0,
                    window_start=now - 3600,
                    window_expires=now + WINDOW_SECONDS,
                )
            )
            field_db.session.commit()
            _insert(Visit, WARMUP, [])
            _insert(PlainVisit, WARMUP, [])
            timed: dict[type, list[float]] = {Visit: [], PlainVisit: []}
            blocks = [inserts // ROUNDS + (i < inserts % ROUNDS) for i in range(ROUNDS)]
            for index, size in enumerate(blocks):
                order = (Visit, PlainVisit) if index % 2 == 0 else (PlainVisit, Visit)
                for model in order:
                    _insert(model, size, timed[model])
            session = field_db.session
            counted = session.scalar(select(Quota.count))
            visits = session.scalar(select(func.count()).select_from(Visit))
            plain = session.scalar(select(func.count()).select_from(PlainVisit))
        finally:
            field_db.session.remove()
            field_db.engine.dispose()
    with_quota, without = _summary(timed[Visit]), _summary(timed[PlainVisit])
    return {
        "inserts": inserts,
        "with_quota": with_quota,
        "without_quota": without,
        "overhead_us": with_quota["mean_us"] - without["mean_us"],
        "ratio": with_quota["mean_us"] / without["mean_us"],
        "median_ratio": with_quota["median_us"] / without["median_us"],
        "quota_count_matches": counted == visits == inserts + WARMUP
        and plain == inserts + WARMUP,
    }


def measure_sqlite(directory: Path, inserts: int) -> dict[str, Any]:
    """The field app on a SQLite file in ``directory`` (its own default settings)."""
    path = directory / "field.sqlite"
    try:
        return measure(f"sqlite:///{path}", inserts)
    finally:
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(f"{path}{suffix}")


def measure_postgres(inserts: int) -> dict[str, Any]:
    """The field app on a throwaway PostgreSQL cluster, in a fresh database."""
    import pytest

    from tests.services import start_postgres

    try:
        server = start_postgres()
    except (Exception, pytest.skip.Exception) as exc:
        return {"skipped": f"PostgreSQL unavailable: {exc}"}
    name = f"bench_quota_{os.getpid()}"
    try:
        server.admin(f"CREATE DATABASE {name}")
        try:
            result = measure(server.url(name), inserts)
            result["server"] = "fsync=off, synchronous_commit=off (tests.services)"
            return result
        finally:
            server.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        server.stop()

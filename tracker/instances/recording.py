"""Write crawl outcomes to the database: health, latest values, history, location.

Plain functions over a session; the caller commits. One SELECT, one bulk UPDATE
and one bulk INSERT per batch of outcomes, whatever its size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from tracker.instances.charts import daily_value
from tracker.instances.crawler import CrawlOutcome, Endpoint
from tracker.instances.geo import Locator
from tracker.instances.models import HEALTH_UP, CrawlResult, DailyValue, Instance

LOCATION_FIELDS = (
    "country_code",
    "country_name",
    "city",
    "latitude",
    "longitude",
    "accuracy_km",
)
CRAWL_FIELDS = (
    "health",
    "last_attempt",
    "last_duration_ms",
    "last_status",
    "last_error",
    "crawled",
    "crawled_sources",
    "last_success",
)


@dataclass
class Counts:
    up: int = 0
    down: int = 0
    skipped: int = 0

    def add(self, other: Counts) -> None:
        self.up += other.up
        self.down += other.down
        self.skipped += other.skipped


def merge_sources(
    previous: dict, outcome: CrawlOutcome, endpoints: Sequence[Endpoint]
) -> tuple[dict, dict]:
    """Return (sources, merged): each endpoint's latest good answer, and their
    merge in configured order. A failing endpoint keeps its previous answer."""
    sources = {e.path: previous[e.path] for e in endpoints if e.path in previous}
    for result in outcome.results:
        if result.ok:
            sources[result.path] = result.data
    merged: dict = {}
    for endpoint in endpoints:
        merged.update(sources.get(endpoint.path, {}))
    return sources, merged


def upsert_daily_values(session: Session, rows: list[dict]) -> None:
    """Insert or replace (field, day, instance) values: the day's last crawl wins."""
    if not rows:
        return
    insert_for = (
        postgresql_insert
        if session.get_bind().dialect.name == "postgresql"
        else sqlite_insert
    )
    statement = insert_for(DailyValue).values(rows)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["field", "day", "instance_id"],
            set_={"value": statement.excluded.value},
        )
    )


def daily_rows(
    instance_id: int, day: date, merged: dict, fields: Mapping[str, str | None]
) -> list[dict]:
    rows = []
    for field, aggregation in fields.items():
        present, number = daily_value(merged.get(field), aggregation)
        if present:
            rows.append(
                {
                    "field": field,
                    "day": day,
                    "instance_id": instance_id,
                    "value": number,
                }
            )
    return rows


def record_outcomes(
    session: Session,
    outcomes: Sequence[CrawlOutcome],
    endpoints: Sequence[Endpoint],
    locator: Locator,
    batch_operation_id: int | None = None,
    daily_fields: Mapping[str, str | None] | None = None,
) -> Counts:
    """Store a batch of outcomes; return how many were up, down and skipped."""
    counts = Counts()
    if not outcomes:
        return counts
    current = {
        row.id: row
        for row in session.execute(
            select(
                Instance.id,
                Instance.crawled,
                Instance.crawled_sources,
                Instance.last_success,
                Instance.location_manual,
            ).where(Instance.id.in_([o.instance_id for o in outcomes]))
        )
    }
    updates, located, history, daily = [], [], [], []
    for outcome in outcomes:
        row = current.get(outcome.instance_id)
        if row is None:  # deleted while it was being crawled
            counts.skipped += 1
            continue
        values = {
            "row_id": outcome.instance_id,
            "health": outcome.health,
            "last_attempt": outcome.started,
            "last_duration_ms": outcome.duration_ms,
            "last_status": outcome.status,
            "last_error": outcome.error,
            "crawled": row.crawled,
            "crawled_sources": row.crawled_sources,
            "last_success": row.last_success,
        }
        if outcome.skipped:
            counts.skipped += 1
        else:
            sources, merged = merge_sources(
                row.crawled_sources or {}, outcome, endpoints
            )
            values.update(crawled=merged, crawled_sources=sources)
            if outcome.health == HEALTH_UP:
                counts.up += 1
                values["last_success"] = outcome.started
                daily.extend(
                    daily_rows(
                        outcome.instance_id,
                        outcome.started.date(),
                        merged,
                        daily_fields or {},
                    )
                )
            else:
                counts.down += 1
            history.append(
                {
                    "instance_id": outcome.instance_id,
                    "batch_operation_id": batch_operation_id,
                    "crawled_at": outcome.started,
                    "health": outcome.health,
                    "status": outcome.status,
                    "duration_ms": outcome.duration_ms,
                    "error": outcome.error,
                    "data": {
                        k: v for r in outcome.results if r.ok for k, v in r.data.items()
                    },
                }
            )
        if outcome.address and not row.location_manual:
            location = locator.locate(outcome.address)
            located.append(
                {
                    "row_id": outcome.instance_id,
                    "address": outcome.address,
                    **{name: getattr(location, name) for name in LOCATION_FIELDS},
                }
            )
        updates.append(values)
    # Plain executemany UPDATEs of the columns a crawl owns: a row deleted
    # meanwhile is simply not updated, and a location pinned by hand meanwhile
    # is left alone.
    table = Instance.__table__
    if updates:
        session.execute(
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values({name: bindparam(name) for name in CRAWL_FIELDS}),
            updates,
        )
    if located:
        session.execute(
            update(table)
            .where(
                table.c.id == bindparam("row_id"), table.c.location_manual.is_(False)
            )
            .values({name: bindparam(name) for name in ("address", *LOCATION_FIELDS)}),
            located,
        )
    if history:
        session.execute(insert(CrawlResult), history)
    upsert_daily_values(session, daily)
    return counts

"""Write crawl outcomes to the database: health, latest values, history, location.

Plain functions over a session; the caller commits. One SELECT, one bulk UPDATE
and one bulk INSERT per batch of outcomes, whatever its size.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Row, bindparam, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from tracker.instances.charts import daily_value
from tracker.instances.crawler import CrawlOutcome, Endpoint
from tracker.instances.geo import Locator
from tracker.instances.models import (
    HEALTH_DOWN,
    HEALTH_UP,
    VIA_CRAWL,
    CrawlResult,
    Instance,
)
from tracker.instances.tallies import Chart, charts_or_app, refresh_entries
from tracker.instances.tallies import write_daily_values as upsert_daily_values

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
    "down_since",
    "state",
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
    return sources, merged_sources(sources, endpoints)


def with_heartbeat(heartbeat_values: dict | None, merged: dict) -> dict:
    """What the instance sent in a heartbeat lies under what its endpoints answer."""
    return {**(heartbeat_values or {}), **merged}


def merged_sources(sources: dict, endpoints: Sequence[Endpoint]) -> dict:
    """The endpoints' latest good answers merged in configured order."""
    merged: dict = {}
    for endpoint in endpoints:
        merged.update(sources.get(endpoint.path, {}))
    return merged


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


@dataclass(frozen=True)
class HistoryLimit:
    """How much of an attempt's answers its history row keeps: all of it up to
    ``max_bytes`` of answers, else only the ``kept_fields`` (the configured ones),
    and nothing if even those are larger."""

    max_bytes: int
    kept_fields: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, config: Mapping) -> HistoryLimit:
        return cls(
            int(config["CRAWL_HISTORY_MAX_BYTES"]),
            frozenset(config["CRAWLED_FIELDS_SETTINGS"]),
        )

    def keep(self, outcome: CrawlOutcome) -> tuple[dict, bool]:
        """Return (the values kept, whether some were left out)."""
        good = [r for r in outcome.results if r.ok]
        data = {k: v for r in good for k, v in r.data.items()}
        if sum(r.size for r in good) <= self.max_bytes:
            return data, False
        kept = {k: v for k, v in data.items() if k in self.kept_fields}
        if len(json.dumps(kept)) > self.max_bytes:
            kept = {}
        return kept, True


UNLIMITED = HistoryLimit(max_bytes=sys.maxsize)


def history_row(
    outcome: CrawlOutcome,
    batch_operation_id: int | None,
    limit: HistoryLimit = UNLIMITED,
) -> dict:
    """The crawl-history row of one attempt: what each good endpoint answered,
    within ``limit``."""
    data, trimmed = limit.keep(outcome)
    return {
        "instance_id": outcome.instance_id,
        "batch_operation_id": batch_operation_id,
        "crawled_at": outcome.started,
        "health": outcome.health,
        "status": outcome.status,
        "duration_ms": outcome.duration_ms,
        "error": outcome.error,
        "data": data,
        "data_trimmed": trimmed,
    }


def state_row(outcome: CrawlOutcome, current: Row, endpoints: Sequence[Endpoint]):
    """The instance's new crawl columns (CRAWL_FIELDS) after ``outcome``, and the
    merged values (None when the attempt was skipped and nothing was merged)."""
    values = {
        "row_id": outcome.instance_id,
        "health": outcome.health,
        "last_attempt": outcome.started,
        "last_duration_ms": outcome.duration_ms,
        "last_status": outcome.status,
        "last_error": outcome.error,
        "crawled": current.crawled,
        "crawled_sources": current.crawled_sources,
        "last_success": current.last_success,
        "down_since": current.down_since,
        "state": None,  # to be judged again
    }
    if outcome.skipped:
        return values, None
    sources, merged = merge_sources(current.crawled_sources or {}, outcome, endpoints)
    merged = with_heartbeat(current.heartbeat_values, merged)
    values.update(crawled=merged, crawled_sources=sources)
    if outcome.health == HEALTH_UP:
        values["last_success"] = outcome.started
        values["down_since"] = None
    elif current.health != HEALTH_DOWN or current.down_since is None:
        values["down_since"] = outcome.started
    return values, merged


def location_row(outcome: CrawlOutcome, locator: Locator) -> dict:
    """The address the instance was reached at and where GeoIP puts it."""
    location = locator.locate(outcome.address)
    return {
        "row_id": outcome.instance_id,
        "address": outcome.address,
        **{name: getattr(location, name) for name in LOCATION_FIELDS},
    }


@dataclass
class Rows:
    """What a batch of outcomes writes, statement by statement."""

    states: list[dict] = dataclasses.field(default_factory=list)
    contacts: list[dict] = dataclasses.field(default_factory=list)
    locations: list[dict] = dataclasses.field(default_factory=list)
    history: list[dict] = dataclasses.field(default_factory=list)
    daily: list[dict] = dataclasses.field(default_factory=list)
    # Instances whose values or location changed, with their values now.
    crawled: dict[int, dict] = dataclasses.field(default_factory=dict)
    counts: Counts = dataclasses.field(default_factory=Counts)


def build_rows(
    outcomes: Sequence[CrawlOutcome],
    current: Mapping[int, Row],
    endpoints: Sequence[Endpoint],
    locator: Locator,
    batch_operation_id: int | None,
    daily_fields: Mapping[str, str | None],
    history_limit: HistoryLimit = UNLIMITED,
) -> Rows:
    """Turn outcomes and the instances' current columns into rows to write."""
    rows = Rows()
    for outcome in outcomes:
        row = current.get(outcome.instance_id)
        if row is None:  # deleted while it was being crawled
            rows.counts.skipped += 1
            continue
        values, merged = state_row(outcome, row, endpoints)
        rows.states.append(values)
        if merged is not None:
            rows.crawled[outcome.instance_id] = merged
        if merged is None:
            rows.counts.skipped += 1
        else:
            if outcome.health == HEALTH_UP:
                rows.counts.up += 1
                rows.contacts.append(
                    {"row_id": outcome.instance_id, "at": outcome.started}
                )
                rows.daily.extend(
                    daily_rows(
                        outcome.instance_id,
                        outcome.started.date(),
                        merged,
                        daily_fields,
                    )
                )
            else:
                rows.counts.down += 1
            rows.history.append(history_row(outcome, batch_operation_id, history_limit))
        if outcome.address and not row.location_manual:
            rows.locations.append(location_row(outcome, locator))
            rows.crawled.setdefault(outcome.instance_id, row.crawled)
    return rows


def write_rows(session: Session, rows: Rows) -> None:
    """Write the rows: one bulk statement per kind, whatever the batch size."""
    # Plain executemany UPDATEs of the columns a crawl owns: a row deleted
    # meanwhile is simply not updated, and a location pinned by hand meanwhile
    # is left alone.
    table = Instance.__table__
    if rows.states:
        session.execute(
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values({name: bindparam(name) for name in CRAWL_FIELDS}),
            rows.states,
        )
    if rows.contacts:
        # A successful crawl is contact, unless a newer one came another way.
        session.execute(
            update(table)
            .where(
                table.c.id == bindparam("row_id"),
                or_(
                    table.c.last_contact.is_(None),
                    table.c.last_contact <= bindparam("at"),
                ),
            )
            .values(last_contact=bindparam("at"), last_contact_via=VIA_CRAWL),
            rows.contacts,
        )
    if rows.locations:
        session.execute(
            update(table)
            .where(
                table.c.id == bindparam("row_id"), table.c.location_manual.is_(False)
            )
            .values({name: bindparam(name) for name in ("address", *LOCATION_FIELDS)}),
            rows.locations,
        )
    if rows.history:
        # A Core executemany: no ORM bookkeeping per row.
        session.connection().execute(insert(CrawlResult.__table__), rows.history)
    upsert_daily_values(session, rows.daily)


def write_entries(session: Session, rows: Rows, charts: Sequence[Chart]) -> None:
    """Bring the chart entries of the instances whose values or location changed
    in step, with what the rows just written hold (read back under their locks:
    an instance disabled or pinned meanwhile is counted as it now is)."""
    if not charts or not rows.crawled:
        return
    ids = list(rows.crawled)
    now = session.execute(
        select(Instance.id, Instance.enabled, Instance.country_name).where(
            Instance.id.in_(ids)
        )
    )
    refresh_entries(
        session,
        (
            (instance_id, enabled, rows.crawled[instance_id], country)
            for instance_id, enabled, country in now
        ),
        charts,
    )


# What a write of one instance's rows can raise; anything else is not its fault.
RECORDING_ERRORS = (SQLAlchemyError, ValueError, TypeError, OverflowError)
ERROR_TEXT_MAX = 500


def failure_rows(
    outcome: CrawlOutcome,
    current: Mapping[int, Row],
    exc: BaseException,
    batch_operation_id: int | None,
) -> Rows:
    """Rows that record an outcome which could not be stored as the instance's
    error: down, with its previous values kept."""
    rows = Rows()
    row = current.get(outcome.instance_id)
    if row is None:
        rows.counts.skipped += 1
        return rows
    error = f"could not be recorded: {type(exc).__name__}: {exc}"[:ERROR_TEXT_MAX]
    failed = dataclasses.replace(
        outcome, health=HEALTH_DOWN, error=error, results=(), skipped=False
    )
    values, _ = state_row(failed, row, ())
    values.update(crawled=row.crawled, crawled_sources=row.crawled_sources)
    rows.states.append(values)
    rows.history.append(history_row(failed, batch_operation_id))
    rows.counts.down += 1
    return rows


def record_outcomes(
    session: Session,
    outcomes: Sequence[CrawlOutcome],
    endpoints: Sequence[Endpoint],
    locator: Locator,
    batch_operation_id: int | None = None,
    daily_fields: Mapping[str, str | None] | None = None,
    history_limit: HistoryLimit = UNLIMITED,
    charts: Sequence[Chart] | None = None,
) -> Counts:
    """Store a batch of outcomes; return how many were up, down and skipped.

    The batch is written in one savepoint; if that fails, each outcome is
    written in its own, and one that still fails is recorded as its
    instance's error, so that it never costs the others their results.
    """
    if not outcomes:
        return Counts()
    charts = charts_or_app(charts)
    current = {
        row.id: row
        for row in session.execute(
            select(
                Instance.id,
                Instance.crawled,
                Instance.crawled_sources,
                Instance.last_success,
                Instance.location_manual,
                Instance.heartbeat_values,
                Instance.health,
                Instance.down_since,
            ).where(Instance.id.in_([o.instance_id for o in outcomes]))
        )
    }

    def write(batch: Sequence[CrawlOutcome]) -> Counts:
        with session.begin_nested():
            rows = build_rows(
                batch,
                current,
                endpoints,
                locator,
                batch_operation_id,
                daily_fields or {},
                history_limit,
            )
            write_rows(session, rows)
            write_entries(session, rows, charts)
        return rows.counts

    try:
        return write(outcomes)
    except RECORDING_ERRORS:
        pass
    counts = Counts()
    for outcome in outcomes:
        try:
            counts.add(write([outcome]))
        except RECORDING_ERRORS as exc:
            rows = failure_rows(outcome, current, exc, batch_operation_id)
            with session.begin_nested():
                write_rows(session, rows)
            counts.add(rows.counts)
    return counts

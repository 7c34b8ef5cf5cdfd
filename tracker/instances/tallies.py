"""The statistics' numbers, added up as instances change rather than when the
page is shown.

Two kinds of totals are kept in step with what they count, in the transaction
that changes it:

- ``daily_totals``: per field and day, the daily values (how many, how many
  numbers, their sum), moved by every write of a daily value and every delete.
- ``chart_totals``: per chart and category, what the *enabled* instances add to
  the charts of current values (``chart_entries``: one row per instance and
  category it counts in, or group its number goes to). An instance's entries
  are worked out in Python from its crawled values and country (the rules of
  ``tracker.instances.charts``), compared with the stored ones, and only the
  difference is written, with its sum added to the totals; a disabled or
  deleted instance has no entries. So the totals are always the sum of the
  entries, whatever changed them.

Every writer of an instance's entries holds its row lock first (it has just
updated or locked the row), so that two transactions never diff against the
same old entries. Totals are moved in one statement per write, in key order.

A chart's entries are built from every instance once (``build_charts``), the
first time the page needs a chart whose setting is new, and kept from then on.
Plain functions; the caller commits.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import (
    bindparam,
    case,
    delete,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, scoped_session

from tracker.instances.charts import (
    FieldSettings,
    Row,
    aggregate_value,
    count_labels,
    field_settings,
    group_label,
    is_number,
)
from tracker.instances.models import (
    TEXT_MAX,
    ChartBuilt,
    ChartEntry,
    ChartTotal,
    DailyTotal,
    DailyValue,
    Instance,
)

# Ids per IN (...) list: well under SQLite's limit on bound parameters.
IDS_PER_QUERY = 2000
BUILD_BATCH = 2000
CHARTS_EXTENSION = "tracker.instances.tallies"
ChartEntryKey = tuple[str, str, float | None]  # chart, label, number


@dataclass(frozen=True)
class Chart:
    """A chart of current values: its key, its field's settings, and the
    settings its grouping depends on."""

    key: str
    setting: FieldSettings
    fields: Mapping[str, FieldSettings]

    @property
    def counts(self) -> bool:
        return self.setting.chart_aggregation == "count"


def chart_key(setting: FieldSettings, fields: Mapping[str, FieldSettings]) -> str:
    """The field's name and a digest of what decides its entries: a changed
    setting makes a new chart, built afresh."""
    by = setting.chart_aggregate_by
    parts = [setting.name, setting.aggregation]
    if setting.chart_aggregation == "count":
        parts.append("count")
    else:
        by_setting = fields.get(by)
        parts += ["number", by, by_setting.aggregation if by_setting else None]
    digest = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]
    return f"{setting.name[:100]}:{digest}"


def value_charts(fields: Mapping[str, FieldSettings]) -> list[Chart]:
    """The charts of current values (every charted field not drawn as a line)."""
    return [
        Chart(chart_key(setting, fields), setting, fields)
        for setting in fields.values()
        if setting.chart and setting.chart_type != "line"
    ]


def configured_charts(config: Mapping) -> list[Chart]:
    """The charts of current values that ``config`` asks for."""
    return value_charts(field_settings(config["CRAWLED_FIELDS_SETTINGS"]))


def app_charts() -> list[Chart]:
    """The current application's charts of current values (worked out once)."""
    charts = current_app.extensions.get(CHARTS_EXTENSION)
    if charts is None:
        charts = configured_charts(current_app.config)
        current_app.extensions[CHARTS_EXTENSION] = charts
    return charts


def charts_or_app(charts: Sequence[Chart] | None) -> Sequence[Chart]:
    """``charts`` if given, else the current application's (none outside one)."""
    if charts is not None:
        return charts
    return app_charts() if has_app_context() else ()


def _label(text: str) -> str:
    return text[:TEXT_MAX]


def entries_of(
    crawled: Mapping[str, Any] | None,
    country_name: str | None,
    charts: Sequence[Chart],
) -> set[ChartEntryKey]:
    """What an enabled instance adds to each chart (the rules of
    ``chart_series``: a category per value, or a number per group)."""
    row = Row(crawled or {}, country_name)
    entries: set[ChartEntryKey] = set()
    for chart in charts:
        setting = chart.setting
        value = row.crawled.get(setting.name)
        if chart.counts:
            entries.update(
                (chart.key, _label(label), None)
                for label in count_labels(value, setting)
            )
            continue
        number = aggregate_value(value, setting.aggregation)
        if is_number(number):
            by = group_label(row, setting.chart_aggregate_by, chart.fields)
            entries.add((chart.key, _label(by), float(number)))
    return entries


def _insert_for(session: Session):
    if session.get_bind().dialect.name == "postgresql":
        return postgresql_insert
    return sqlite_insert


def _add_totals(
    session: Session,
    model,
    keys: tuple[str, ...],
    sums: tuple[str, ...],
    deltas: Mapping[tuple, Sequence[float]],
) -> None:
    """Add ``deltas`` ((key...) -> (amount per column of ``sums``)) to the rows
    of ``model``, creating missing ones: one statement, in key order, so that
    concurrent writers take the rows' locks in the same order."""
    rows = [
        {**dict(zip(keys, key, strict=True)), **dict(zip(sums, amounts, strict=True))}
        for key, amounts in sorted(deltas.items())
        if any(amounts)
    ]
    if not rows:
        return
    table = model.__table__
    # One statement run for every row (executemany, compiled once and cached),
    # in the rows' order.
    statement = _insert_for(session)(table)
    # The first column counts rows: at zero, the sums are reset, so that
    # rounding left by adding and taking away does not linger.
    count = sums[0]
    emptied = table.c[count] + statement.excluded[count] == 0
    updates = {count: table.c[count] + statement.excluded[count]}
    for name in sums[1:]:
        updates[name] = case(
            (emptied, 0), else_=table.c[name] + statement.excluded[name]
        )
    session.connection().execute(
        statement.on_conflict_do_update(index_elements=list(keys), set_=updates), rows
    )


def _chunks(items: Sequence, size: int = IDS_PER_QUERY) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _stored_entries(
    session: Session, instance_ids: Sequence[int], chart_keys: Sequence[str]
) -> dict[int, set[ChartEntryKey]]:
    stored: dict[int, set[ChartEntryKey]] = defaultdict(set)
    for ids in _chunks(list(instance_ids)):
        for instance_id, chart, label, number in session.connection().execute(
            select(
                ChartEntry.instance_id,
                ChartEntry.chart,
                ChartEntry.label,
                ChartEntry.number,
            ).where(ChartEntry.instance_id.in_(ids), ChartEntry.chart.in_(chart_keys))
        ):
            stored[instance_id].add((chart, label, number))
    return stored


def _tally(
    instance_id: int,
    entries: Iterable[ChartEntryKey],
    sign: int,
    deltas: dict[tuple, list[float]],
) -> list[dict]:
    """Rows of ``entries``, added (sign 1) to or taken (-1) from ``deltas``."""
    rows = []
    for chart, label, number in entries:
        rows.append(
            {
                "instance_id": instance_id,
                "chart": chart,
                "label": label,
                "number": number,
            }
        )
        delta = deltas[(chart, label)]
        delta[0] += sign
        delta[1] += sign * (number or 0.0)
    return rows


def set_entries(
    session: Session,
    wanted: Mapping[int, set[ChartEntryKey]],
    charts: Sequence[Chart],
) -> None:
    """Make the stored entries of these instances ``wanted`` (an empty set for
    one that counts no more), moving the totals by the difference. The caller
    holds the instances' row locks."""
    if not charts or not wanted:
        return
    stored = _stored_entries(session, list(wanted), [c.key for c in charts])
    added, removed = [], []
    deltas: dict[tuple, list[float]] = defaultdict(lambda: [0, 0.0])
    for instance_id, entries in wanted.items():
        old = stored.get(instance_id, set())
        added += _tally(instance_id, entries - old, 1, deltas)
        removed += _tally(instance_id, old - entries, -1, deltas)
    table = ChartEntry.__table__
    connection = session.connection()
    if removed:
        connection.execute(
            table.delete().where(
                table.c.instance_id == bindparam("instance_id"),
                table.c.chart == bindparam("chart"),
                table.c.label == bindparam("label"),
            ),
            removed,
        )
    if added:
        connection.execute(table.insert(), added)
    _add_totals(session, ChartTotal, ("chart", "label"), ("instances", "total"), deltas)


def refresh_entries(
    session: Session,
    instances: Iterable[tuple[int, bool, Mapping | None, str | None]],
    charts: Sequence[Chart],
) -> None:
    """Set the entries of (id, enabled, crawled, country name) instances."""
    if charts:
        set_entries(
            session,
            {
                instance_id: entries_of(crawled, country, charts) if enabled else set()
                for instance_id, enabled, crawled, country in instances
            },
            charts,
        )


def _lock_instances(session: Session, instance_ids: Sequence[int]) -> None:
    """Hold the row locks of these instances (PostgreSQL; SQLite has one writer)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for ids in _chunks(list(instance_ids)):
        session.connection().execute(
            select(Instance.id).where(Instance.id.in_(ids)).with_for_update()
        )


def forget_instances(session: Session, instance_ids: Sequence[int]) -> None:
    """Take instances about to be deleted out of every total."""
    if not instance_ids:
        return
    _lock_instances(session, instance_ids)
    # Every chart's entries, not only the configured ones: none may linger.
    connection = session.connection()
    deltas: dict[tuple, list[float]] = defaultdict(lambda: [0, 0.0])
    daily: dict[tuple, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for ids in _chunks(list(instance_ids)):
        for chart, label, number in connection.execute(
            select(ChartEntry.chart, ChartEntry.label, ChartEntry.number).where(
                ChartEntry.instance_id.in_(ids)
            )
        ):
            delta = deltas[(chart, label)]
            delta[0] -= 1
            delta[1] -= number or 0.0
        connection.execute(delete(ChartEntry).where(ChartEntry.instance_id.in_(ids)))
        for field, day, value in connection.execute(
            select(DailyValue.field, DailyValue.day, DailyValue.value).where(
                DailyValue.instance_id.in_(ids)
            )
        ):
            delta = daily[(field, day)]
            delta[0] -= 1
            delta[1] -= value is not None
            delta[2] -= value or 0.0
    _add_totals(session, ChartTotal, ("chart", "label"), ("instances", "total"), deltas)
    _add_daily(session, daily)


def _add_daily(session: Session, deltas: Mapping[tuple, Sequence[float]]) -> None:
    _add_totals(
        session,
        DailyTotal,
        ("field", "day"),
        ("instances", "numbers", "total"),
        deltas,
    )


def write_daily_values(session: Session, rows: list[dict]) -> None:
    """Insert or replace (field, day, instance) values, the day's last crawl
    winning, and move the day's totals by the difference. The caller holds the
    instances' row locks."""
    if not rows:
        return
    # One value per key: the last one given wins, as the upsert would have it.
    latest = {(r["field"], r["day"], r["instance_id"]): r for r in rows}
    connection = session.connection()
    # Looked up per field and day (a batch has one or two), so that the
    # primary key's index finds them.
    by_day: dict[tuple, list[int]] = defaultdict(list)
    for field, day, instance_id in latest:
        by_day[(field, day)].append(instance_id)
    old: dict[tuple, float | None] = {}
    for (field, day), instance_ids in by_day.items():
        for ids in _chunks(instance_ids):
            for instance_id, value in connection.execute(
                select(DailyValue.instance_id, DailyValue.value).where(
                    DailyValue.field == field,
                    DailyValue.day == day,
                    DailyValue.instance_id.in_(ids),
                )
            ):
                old[(field, day, instance_id)] = value
    deltas: dict[tuple, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for key, row in latest.items():
        value = row["value"]
        delta = deltas[key[:2]]
        if key in old:
            previous = old[key]
            delta[1] += (value is not None) - (previous is not None)
            delta[2] += (value or 0.0) - (previous or 0.0)
        else:
            delta[0] += 1
            delta[1] += value is not None
            delta[2] += value or 0.0
    statement = _insert_for(session)(DailyValue.__table__)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["field", "day", "instance_id"],
            set_={"value": statement.excluded.value},
        ),
        list(latest.values()),
    )
    _add_daily(session, deltas)


def prune_daily_totals(session: Session, before) -> None:
    """Forget the totals of days whose values were pruned."""
    session.execute(delete(DailyTotal).where(DailyTotal.day < before))


def rebuild_daily_totals(session: Session) -> None:
    """Add the daily values up again from scratch (after a bulk load)."""
    session.execute(delete(DailyTotal))
    session.execute(
        DailyTotal.__table__.insert().from_select(
            ["field", "day", "instances", "numbers", "total"],
            select(
                DailyValue.field,
                DailyValue.day,
                func.count(),
                func.count(DailyValue.value),
                func.coalesce(func.sum(DailyValue.value), 0.0),
            ).group_by(DailyValue.field, DailyValue.day),
        )
    )


def build_charts(
    session: Session, charts: Sequence[Chart], configured: Sequence[Chart]
) -> None:
    """Build these charts' entries and totals from every enabled instance, with
    writers held off (PostgreSQL) or shut out (SQLite's one writer) meanwhile;
    forget the entries of charts no longer ``configured``."""
    if not charts:
        return
    keys = [chart.key for chart in charts]
    if session.get_bind().dialect.name == "postgresql":
        # Writers finish first and wait after: the instances read below are
        # the ones the entries are kept in step with from now on.
        session.execute(text("LOCK TABLE instances IN SHARE MODE"))
    current = [chart.key for chart in configured]
    for model in (ChartEntry, ChartTotal, ChartBuilt):
        session.execute(
            delete(model).where(model.chart.in_(keys) | model.chart.not_in(current))
        )
    deltas: dict[tuple, list[float]] = defaultdict(lambda: [0, 0.0])
    batch: list[dict] = []
    table = ChartEntry.__table__
    statement = (
        select(Instance.id, Instance.crawled, Instance.country_name)
        .where(Instance.enabled.is_(True))
        .execution_options(yield_per=BUILD_BATCH)
    )
    for instance_id, crawled, country in session.execute(statement):
        batch += _tally(instance_id, entries_of(crawled, country, charts), 1, deltas)
        if len(batch) >= BUILD_BATCH:
            session.connection().execute(table.insert(), batch)
            batch = []
    if batch:
        session.connection().execute(table.insert(), batch)
    _add_totals(session, ChartTotal, ("chart", "label"), ("instances", "total"), deltas)
    session.execute(ChartBuilt.__table__.insert(), [{"chart": key} for key in keys])


def unbuilt(session: Session, charts: Sequence[Chart]) -> list[Chart]:
    """The charts whose entries were never built."""
    if not charts:
        return []
    built = set(
        session.scalars(
            select(ChartBuilt.chart).where(
                ChartBuilt.chart.in_([c.key for c in charts])
            )
        )
    )
    return [chart for chart in charts if chart.key not in built]


def chart_totals(session: Session, chart: Chart) -> list[tuple[str, int, float]]:
    """(label, instances, total) of a chart's categories that count anything."""
    return session.execute(
        select(ChartTotal.label, ChartTotal.instances, ChartTotal.total).where(
            ChartTotal.chart == chart.key, ChartTotal.instances > 0
        )
    ).all()


# What of an instance its chart entries depend on.
ENTRY_COLUMNS = ("enabled", "crawled", "country_name")


def _changed(instance: Instance) -> bool:
    state = inspect(instance)
    return any(state.attrs[name].history.has_changes() for name in ENTRY_COLUMNS)


def _before_flush(session: Session, _context, _instances) -> None:
    deleted = [o.id for o in session.deleted if isinstance(o, Instance)]
    if deleted:
        forget_instances(session, deleted)


def _after_flush(session: Session, _context) -> None:
    if not has_app_context():
        return
    changed = [
        o
        for o in (*session.new, *session.dirty)
        if isinstance(o, Instance) and (o in session.new or _changed(o))
    ]
    if not changed:
        return
    charts = app_charts()
    refresh_entries(
        session,
        ((o.id, o.enabled, o.crawled, o.country_name) for o in changed),
        charts,
    )


def install(session: scoped_session) -> None:
    """Keep the totals in step with instances changed through the ORM
    (registrations, edits, heartbeats, deletes), once per session."""
    if not event.contains(session, "before_flush", _before_flush):
        event.listen(session, "before_flush", _before_flush)
        event.listen(session, "after_flush", _after_flush)

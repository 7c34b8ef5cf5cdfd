"""Statistics of crawled values, as CRAWLED_FIELDS_SETTINGS describes them.

Plain functions over plain data: values of the wrong shape (a list where a number
was expected, a missing field, an empty list) become Unknown or are skipped; they
never raise.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pycountry

UNKNOWN_LABEL = "Unknown"
COUNTRY = "country"


@dataclass(frozen=True)
class FieldSettings:
    name: str
    label: str
    chart: bool = False
    chart_type: str = "bar"
    aggregation: str | None = None
    chart_aggregation: str = "count"
    chart_aggregate_by: str = COUNTRY


def default_label(name: str) -> str:
    """``python_version`` -> ``Python version``."""
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def field_settings(
    configured: Mapping[str, Mapping[str, Any]],
) -> dict[str, FieldSettings]:
    """Every configured field with the documented defaults filled in."""
    return {
        name: FieldSettings(
            name=name,
            label=options.get("label") or default_label(name),
            chart=options.get("chart", False),
            chart_type=options.get("chart_type", "bar"),
            aggregation=options.get("aggregation"),
            # A line over time is of totals unless told otherwise; other
            # charts count instances per value.
            chart_aggregation=options.get(
                "chart_aggregation",
                "sum" if options.get("chart_type") == "line" else "count",
            ),
            chart_aggregate_by=options.get("chart_aggregate_by", COUNTRY),
        )
        for name, options in configured.items()
    }


def is_number(value: Any) -> bool:
    """Whether ``value`` is a finite number (not a boolean)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def fold(values: list[float], how: str) -> float:
    if how == "sum":
        return sum(values)
    if how == "avg":
        return sum(values) / len(values)
    if how == "min":
        return min(values)
    return max(values)


def aggregate_value(value: Any, aggregation: str | None) -> Any:
    """One instance's value of a field: folded by ``aggregation`` if given.

    Returns None (Unknown) for shapes that do not fit: with no aggregation, a list
    or dict; with one, anything that is not numbers (a number alone is kept).
    """
    if aggregation is None:
        if isinstance(value, list | dict) or value is None:
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value
    if is_number(value):
        return value
    items = list(value.values()) if isinstance(value, dict) else value
    if not isinstance(items, list) or not items or not all(map(is_number, items)):
        return None
    return fold(items, aggregation)


def display(value: Any) -> str:
    """A category label: Unknown for missing values, numbers without noise."""
    if value is None:
        return UNKNOWN_LABEL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Row:
    """What the statistics need of one instance."""

    crawled: Mapping[str, Any]
    country_name: str | None


def group_label(row: Row, by: str, fields: Mapping[str, FieldSettings]) -> str:
    if by == COUNTRY:
        return row.country_name or UNKNOWN_LABEL
    setting = fields.get(by)
    aggregation = setting.aggregation if setting else None
    return display(aggregate_value(row.crawled.get(by), aggregation))


def chart_series(
    rows: Iterable[Row], setting: FieldSettings, fields: Mapping[str, FieldSettings]
) -> dict[str, Any]:
    """Labels and values of one field's chart.

    ``count``: instances per value of the field. ``sum`` / ``avg``: the field's
    numeric values grouped by ``chart_aggregate_by``; non-numbers are skipped.
    """
    if setting.chart_aggregation == "count":
        counts: Counter[str] = Counter()
        for row in rows:
            counts.update(count_labels(row.crawled.get(setting.name), setting))
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        labels = [label for label, _ in ordered]
        values: list[float] = [count for _, count in ordered]
    else:
        groups: dict[str, list[float]] = defaultdict(list)
        for row in rows:
            value = aggregate_value(row.crawled.get(setting.name), setting.aggregation)
            if is_number(value):
                groups[group_label(row, setting.chart_aggregate_by, fields)].append(
                    value
                )
        labels = sorted(groups)
        values = [fold(groups[label], setting.chart_aggregation) for label in labels]
    return series(setting, labels, values)


def series_from_totals(
    setting: FieldSettings, totals: Iterable[tuple[str, int, float]]
) -> dict[str, Any]:
    """A chart from its categories' (label, instances, sum of numbers), as
    ``chart_series`` draws it from every instance."""
    if setting.chart_aggregation == "count":
        ordered = sorted(
            ((label, count) for label, count, _ in totals),
            key=lambda item: (-item[1], item[0]),
        )
        return series(
            setting, [label for label, _ in ordered], [count for _, count in ordered]
        )
    how = setting.chart_aggregation
    ordered = sorted(totals)
    values = [total if how == "sum" else total / count for _, count, total in ordered]
    return series(setting, [label for label, _, _ in ordered], values)


def series(
    setting: FieldSettings, labels: list[str], values: list[float]
) -> dict[str, Any]:
    """One chart's labels, values and each value's share of the whole."""
    total = sum(values)
    return {
        "field": setting.name,
        "label": setting.label,
        "type": setting.chart_type,
        "aggregation": setting.chart_aggregation,
        "labels": labels,
        "values": [round(v, 4) for v in values],
        "percents": [round(100 * v / total, 1) if total else 0.0 for v in values],
    }


def count_labels(value: Any, setting: FieldSettings) -> set[str]:
    """The categories one instance counts in: each element of a list (languages
    spoken, modules installed), else its value's label."""
    if setting.aggregation is None and isinstance(value, list) and value:
        labels = {display(aggregate_value(item, None)) for item in value}
        return labels
    return {display(aggregate_value(value, setting.aggregation))}


def daily_fields(fields: Mapping[str, FieldSettings]) -> dict[str, str | None]:
    """Fields drawn over time, with the aggregation that folds each value."""
    return {
        name: setting.aggregation
        for name, setting in fields.items()
        if setting.chart and setting.chart_type == "line"
    }


def daily_value(raw: Any, aggregation: str | None) -> tuple[bool, float | None]:
    """(present, number) of one crawled value for the daily series."""
    value = aggregate_value(raw, aggregation)
    if value is None:
        return False, None
    if not is_number(value):
        return True, None
    number = float(value)
    # A sum of huge numbers can still overflow: kept as present, not a number.
    return True, (number if math.isfinite(number) else None)


def registrations_series(registered: Iterable[datetime]) -> dict[str, Any]:
    """Cumulative registrations per month."""
    per_month = Counter(moment.strftime("%Y-%m") for moment in registered)
    return cumulative_per_month(per_month.items())


def cumulative_per_month(per_month: Iterable[tuple[str, int]]) -> dict[str, Any]:
    """Cumulative registrations from ("YYYY-MM", registrations) pairs."""
    labels, values, total = [], [], 0
    for month, count in sorted(per_month):
        total += count
        labels.append(month)
        values.append(total)
    return {"field": "registered", "type": "line", "labels": labels, "values": values}


def country_numeric_id(code: str | None) -> str | None:
    """The ISO 3166 numeric id the world map keys countries by ("840" for US)."""
    if not code:
        return None
    country = pycountry.countries.get(alpha_2=code)
    return country.numeric if country else None


def country_table(counts: Iterable[tuple[str | None, str | None, int]]) -> list[dict]:
    """Rows of (code, name, count) as a table with shares, Unknown included."""
    rows = [(code, name, count) for code, name, count in counts if count]
    total = sum(count for _, _, count in rows)
    table = [
        {
            "code": code,
            "numeric": country_numeric_id(code),
            "name": name or code or UNKNOWN_LABEL,
            "count": count,
            "percent": round(100 * count / total, 1) if total else 0.0,
        }
        for code, name, count in rows
    ]
    return sorted(table, key=lambda row: (-row["count"], row["name"]))

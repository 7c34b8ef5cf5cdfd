"""Chart aggregation per CRAWLED_FIELDS_SETTINGS, against hand-computed numbers."""

import pytest

from tracker.instances.charts import (
    Row,
    aggregate_value,
    chart_series,
    country_table,
    daily_value,
    default_label,
    field_settings,
    registrations_series,
)

ROWS = [
    Row(
        {"version": "3.1", "events": 10, "rooms": [1, 2, 3], "load": {"a": 2, "b": 4}},
        "Kenya",
    ),
    Row({"version": "3.1", "events": 20, "rooms": [4], "load": {"a": 6}}, "Kenya"),
    Row({"version": "3.2", "events": 5, "rooms": [], "load": {}}, "Brazil"),
    Row({"version": ["3.2"], "events": "many", "rooms": "x", "load": None}, None),
    Row({}, "Brazil"),
]


def series(name, **options):
    fields = field_settings({name: options, "version": {}})
    result = chart_series(ROWS, fields[name], fields)
    return dict(zip(result["labels"], result["values"], strict=True))


def test_default_label_and_options():
    setting = field_settings({"python_version": {}})["python_version"]
    assert setting.label == "Python version"
    assert (setting.chart, setting.chart_type, setting.aggregation) == (
        False,
        "bar",
        None,
    )
    assert (setting.chart_aggregation, setting.chart_aggregate_by) == (
        "count",
        "country",
    )
    assert default_label("users") == "Users"
    assert field_settings({"x": {"label": "Mine"}})["x"].label == "Mine"


@pytest.mark.parametrize(
    ("value", "aggregation", "expected"),
    [
        (5, None, 5),
        ("3.1", None, "3.1"),
        ([1, 2], None, None),
        ({"a": 1}, None, None),
        ([1, 2, 3], "sum", 6),
        ([1, 2, 3], "avg", 2),
        ([1, 2, 3], "min", 1),
        ([1, 2, 3], "max", 3),
        ({"a": 2, "b": 4}, "avg", 3),
        (7, "sum", 7),
        ([], "sum", None),
        ([1, "x"], "sum", None),
        ("x", "avg", None),
        ([True, 1], "sum", None),
        (None, "max", None),
        (float("nan"), None, None),
    ],
)
def test_aggregate_value(value, aggregation, expected):
    assert aggregate_value(value, aggregation) == expected


def test_count_of_instances_per_value():
    # 3.1 twice; 3.2 once and once in a list; a missing value is Unknown.
    assert series("version") == {"3.1": 2, "3.2": 2, "Unknown": 1}


def test_a_list_field_counts_each_element_once_per_instance():
    rows = [
        Row({"languages": ["en", "fr", "en"]}, None),
        Row({"languages": ["fr"]}, None),
        Row({"languages": []}, None),
        Row({"languages": [{"odd": 1}, "sw"]}, None),
        Row({}, None),
    ]
    fields = field_settings({"languages": {"chart": True, "chart_type": "pie"}})
    result = chart_series(rows, fields["languages"], fields)
    counts = dict(zip(result["labels"], result["values"], strict=True))
    assert counts == {"fr": 2, "Unknown": 3, "en": 1, "sw": 1}
    percents = dict(zip(result["labels"], result["percents"], strict=True))
    assert percents == {"fr": 28.6, "Unknown": 42.9, "en": 14.3, "sw": 14.3}


def test_a_line_chart_defaults_to_the_sum():
    fields = field_settings({"users": {"chart": True, "chart_type": "line"}})
    assert fields["users"].chart_aggregation == "sum"
    pie = field_settings({"users": {"chart": True, "chart_type": "pie"}})
    assert pie["users"].chart_aggregation == "count"
    told = {"users": {"chart_type": "line", "chart_aggregation": "count"}}
    assert field_settings(told)["users"].chart_aggregation == "count"


def test_count_after_folding_a_list():
    # rooms summed per instance: 6, 4, Unknown (empty), Unknown ("x"), Unknown.
    assert series("rooms", aggregation="sum") == {"6": 1, "4": 1, "Unknown": 3}


def test_sum_by_country():
    # Kenya 10 + 20; Brazil 5; "many" is not a number and is skipped.
    assert series("events", chart_aggregation="sum") == {"Kenya": 30, "Brazil": 5}


def test_avg_by_country():
    assert series("events", chart_aggregation="avg") == {"Kenya": 15, "Brazil": 5}


def test_sum_of_folded_values_by_another_field():
    # load avg per instance: 3 (3.1), 6 (3.1), {} skipped; grouped by version.
    assert series(
        "load", aggregation="avg", chart_aggregation="sum", chart_aggregate_by="version"
    ) == {"3.1": 9}


def test_avg_of_max_by_another_field():
    # rooms max: 3 (3.1), 4 (3.1); [] and "x" skipped.
    assert series(
        "rooms",
        aggregation="max",
        chart_aggregation="avg",
        chart_aggregate_by="version",
    ) == {"3.1": 3.5}


def test_grouping_by_a_missing_field_is_unknown():
    assert series("events", chart_aggregation="sum", chart_aggregate_by="absent") == {
        "Unknown": 35
    }


def test_daily_value_presence_and_number():
    assert daily_value(12, None) == (True, 12.0)
    assert daily_value("3.1", None) == (True, None)
    assert daily_value([1, 2], None) == (False, None)
    assert daily_value([1, 2], "sum") == (True, 3.0)
    assert daily_value(None, None) == (False, None)


def test_country_table_with_unknown():
    table = country_table([("KE", "Kenya", 3), ("BR", "Brazil", 1), (None, None, 4)])
    assert [(r["name"], r["count"], r["percent"]) for r in table] == [
        ("Unknown", 4, 50.0),
        ("Kenya", 3, 37.5),
        ("Brazil", 1, 12.5),
    ]
    assert table[1]["numeric"] == "404"
    assert table[0]["numeric"] is None


def test_registrations_are_cumulative_per_month():
    from datetime import datetime

    moments = [datetime(2026, 1, 5), datetime(2026, 1, 9), datetime(2026, 3, 1)]
    assert registrations_series(moments)["values"] == [2, 3]
    assert registrations_series(moments)["labels"] == ["2026-01", "2026-03"]

"""Reading sacct --parsable2 lines: durations, days, headers."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from allocation.sacct import (
    LineProblem,
    SacctFormatError,
    SacctJob,
    parse_elapsed,
    parse_sacct,
    split_by_day,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:00", 0),
        ("01:30", 90),
        ("10:00:00", 36000),
        ("2-03:04:05", 2 * 86400 + 3 * 3600 + 4 * 60 + 5),
    ],
)
def test_elapsed_formats(text, seconds):
    assert parse_elapsed(text) == seconds


@pytest.mark.parametrize("text", ["", "1 hour", "1:2:3:4", "00:61", "x-01:00:00"])
def test_malformed_elapsed_is_refused(text):
    with pytest.raises(ValueError):
        parse_elapsed(text)


def test_a_job_over_three_days_is_shared_by_time():
    zone = ZoneInfo("UTC")
    start = datetime(2100, 1, 1, 12, tzinfo=UTC)
    end = datetime(2100, 1, 3, 12, tzinfo=UTC)
    assert split_by_day(start, end, 48 * 3600, zone) == (
        (date(2100, 1, 1), 12 * 3600),
        (date(2100, 1, 2), 24 * 3600),
        (date(2100, 1, 3), 12 * 3600),
    )


def test_the_header_may_order_columns_freely():
    lines = [
        "Account|JobID|AllocCPUS|Cluster|End|Start|Elapsed",
        "p|9|3|c|2100-01-01T02:00:00|2100-01-01T00:00:00|02:00:00",
    ]
    (job,) = parse_sacct(lines, ZoneInfo("UTC"))
    assert isinstance(job, SacctJob)
    assert (job.account, job.job_id, job.cpus, job.cpu_hours) == ("p", "9", 3, 6.0)


def test_a_header_without_required_columns_stops_the_import():
    with pytest.raises(
        SacctFormatError, match=r"line 1: missing column\(s\) Start, End.*Cluster"
    ):
        list(parse_sacct(["JobID|Account"], ZoneInfo("UTC")))
    with pytest.raises(SacctFormatError, match="empty"):
        list(parse_sacct([], ZoneInfo("UTC")))


def test_an_overlong_field_is_a_problem_not_a_crash():
    lines = [
        "JobID|Cluster|Account|Start|End|Elapsed|AllocCPUS",
        f"1|c|{'a' * 200}|2100-01-01T00:00:00|2100-01-01T00:00:00|00:00|1",
    ]
    (problem,) = parse_sacct(lines, ZoneInfo("UTC"))
    assert problem == LineProblem(2, "Account is longer than 64 characters")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("p|9|3|c|9999-12-31T23:00:00|2100-01-01T00:00:00|02:00:00", "spans more than"),
        ("p|9|²|c|2100-01-01T02:00:00|2100-01-01T00:00:00|02:00:00", "AllocCPUS"),
    ],
)
def test_absurd_lines_are_problems_not_crashes(line, problem):
    lines = ["Account|JobID|AllocCPUS|Cluster|End|Start|Elapsed", line]
    (result,) = parse_sacct(lines, ZoneInfo("UTC"))
    assert isinstance(result, LineProblem)
    assert problem in result.message

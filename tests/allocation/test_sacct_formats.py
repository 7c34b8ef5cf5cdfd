"""sacct output as sites produce it: real samples, aliases, options, odd lines, DST."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from allocation.sacct import (
    SKIP_NOT_STARTED,
    SKIP_STEP,
    SKIP_UNFINISHED,
    LineProblem,
    SacctFormatError,
    SacctJob,
    SacctOptions,
    SkippedLine,
    parse_format,
    parse_sacct,
)

SAMPLES = Path(__file__).parent / "samples"
UTC = ZoneInfo("UTC")
XDMOD_FORMAT = (
    "jobid,jobidraw,cluster,partition,qos,account,group,gid,user,uid,submit,"
    "eligible,start,end,elapsed,exitcode,state,nnodes,ncpus,reqcpus,reqmem,reqtres,"
    "alloctres,timelimit,nodelist,jobname"
)
HEADER = "JobID|Cluster|Account|User|Start|End|Elapsed|AllocCPUS|State"


def read(name: str, zone: ZoneInfo = UTC, **options) -> list:
    with (SAMPLES / name).open(encoding="utf-8") as handle:
        return list(parse_sacct(handle, zone, SacctOptions(**options)))


def jobs(results) -> list[SacctJob]:
    return [item for item in results if isinstance(item, SacctJob)]


def test_xdmod_noheader_output_reads_with_its_format_list():
    results = read("xdmod-accounting-logs.log", format=parse_format(XDMOD_FORMAT))
    found = jobs(results)
    assert len(found) == len(results) == 4
    assert [(j.job_id, j.cluster, j.account, j.cpus) for j in found] == [
        ("4103947", "ub-hpc", "anon", 256),
        ("4107166", "ub-hpc", "dspumpkins", 36),
        ("4107219", "ub-hpc", "anonacct", 48),
        ("5692623", "ub-hpc", "ccr", 0),
    ]
    # NCPUS x Elapsed: 256 CPUs for 3 days; "CANCELLED by 102216" is a state.
    assert found[0].cpu_seconds == 256 * 72 * 3600
    assert found[1].cpu_seconds == 36 * (2 * 86400 + 22 * 3600 + 3 * 60 + 4)
    for job in found:
        assert sum(seconds for _day, seconds in job.days) == job.cpu_seconds


def test_headerless_output_without_a_format_is_refused_with_a_way_out():
    with pytest.raises(SacctFormatError, match="--noheader, give the --format"):
        read("xdmod-accounting-logs.log")


def test_a_header_that_sacct_printed_as_well_as_a_format_is_not_a_job():
    lines = [HEADER, "1|c|a|u|2100-01-01T00:00:00|2100-01-01T01:00:00|01:00:00|2|"]
    fmt = parse_format(
        "JobID,Cluster%20,Account,User,Start,End,Elapsed,AllocCPUS,State"
    )
    (job,) = parse_sacct(lines, UTC, SacctOptions(format=fmt))
    assert job.cpu_seconds == 7200


def test_unknown_states_are_reported_not_charged():
    results = read("xdmod-unknown-job-state.log", format=parse_format(XDMOD_FORMAT))
    assert results == [
        LineProblem(1, "unknown state 'FOO': not charged"),
        LineProblem(2, "unknown state 'BAR': not charged"),
    ]


def test_running_jobs_wait_and_jobs_that_never_started_are_counted():
    results = read("xdmod-non-ended-job-state.log", format=parse_format(XDMOD_FORMAT))
    assert results == [
        SkippedLine(1, SKIP_UNFINISHED),
        SkippedLine(2, SKIP_NOT_STARTED),
    ]


def test_ncpus_header_of_a_simulated_cluster():
    found = jobs(read("slurmsim-micro-cluster.out"))
    assert [(j.job_id, j.account, j.cpus, j.cpu_seconds) for j in found] == [
        ("1001", "account2", 12, 0),
        ("1002", "account1", 1, 60),
        ("1003", "account2", 1, 5),
        ("1004", "account1", 24, 24 * 21),
    ]


def test_a_het_job_sample_without_times_names_what_is_missing():
    with pytest.raises(SacctFormatError) as refused:
        read("torchx-hetjob.txt")
    message = str(refused.value)
    assert "missing column(s) Start, End, Elapsed" in message
    assert "Cluster (or name the machine" in message


def test_het_job_components_and_array_tasks_are_charged_once_each():
    lines = [
        HEADER,
        "1853+0|c|p|u|2100-01-01T00:00:00|2100-01-01T01:00:00|01:00:00|4|COMPLETED",
        "1853+0.batch|c|p|u|2100-01-01T00:00:00|2100-01-01T01:00:00|01:00:00|4|COMPLETED",
        "1853+0.0|c|p|u|2100-01-01T00:00:00|2100-01-01T01:00:00|01:00:00|4|COMPLETED",
        "1853+1|c|p|u|2100-01-01T00:00:00|2100-01-01T01:00:00|01:00:00|1|COMPLETED",
        "1853+1.0|c|p|u|2100-01-01T00:00:00|2100-01-01T01:00:00|01:00:00|1|COMPLETED",
        "77_1|c|p|u|2100-01-01T00:00:00|2100-01-01T00:30:00|00:30:00|2|COMPLETED",
        "77_2|c|p|u|2100-01-01T00:00:00|2100-01-01T00:30:00|00:30:00|2|FAILED",
        "77_1.batch|c|p|u|2100-01-01T00:00:00|2100-01-01T00:30:00|00:30:00|2|COMPLETED",
        "77_[3-5]|c|p|u|None|Unknown|00:00:00|2|PENDING",
    ]
    results = list(parse_sacct(lines, UTC))
    assert [j.job_id for j in jobs(results)] == ["1853+0", "1853+1", "77_1", "77_2"]
    assert sum(j.cpu_seconds for j in jobs(results)) == 5 * 3600 + 2 * 3600
    skipped = [r.reason for r in results if isinstance(r, SkippedLine)]
    assert skipped == [SKIP_STEP] * 4 + [SKIP_NOT_STARTED]


def test_each_run_of_a_requeued_job_is_a_job():
    # sacct --duplicates lists the earlier runs of a requeued job too.
    lines = [
        HEADER,
        "42|c|p|u|2100-01-01T00:00:00|2100-01-01T02:00:00|02:00:00|8|REQUEUED",
        "42|c|p|u|2100-01-01T03:00:00|2100-01-01T04:00:00|01:00:00|8|COMPLETED",
    ]
    first, second = parse_sacct(lines, UTC)
    assert (first.job_id, second.job_id) == ("42", "42")
    assert first.started != second.started
    assert (first.cpu_hours, second.cpu_hours) == (16.0, 8.0)


def test_aliases_alloctres_elapsedraw_and_cputimeraw():
    lines = [
        "JobIDRaw|Cluster|Account|Start|End|ElapsedRaw|AllocTRES",
        "9|c|p|2100-01-01T00:00:00|2100-01-01T00:10:00|600|billing=8,cpu=6,mem=4G,node=1",
    ]
    (job,) = parse_sacct(lines, UTC)
    assert (job.cpus, job.elapsed_seconds, job.cpu_seconds) == (6, 600, 3600)
    lines = [
        "JobID|Cluster|Account|Start|End|CPUTimeRAW",
        "9|c|p|2100-01-01T00:00:00|2100-01-01T00:10:00|1200",
    ]
    (job,) = parse_sacct(lines, UTC)
    assert (job.cpus, job.elapsed_seconds, job.cpu_seconds) == (2, 600, 1200)


def test_a_file_without_cluster_is_read_for_the_named_machine_and_delimiter():
    lines = [
        "jobid;account;start;end;elapsed;ncpus;state",
        "5;ProjA;2100-01-01T00:00:00;2100-01-01T01:00:00;01:00:00;3;COMPLETED",
    ]
    with pytest.raises(SacctFormatError, match="Cluster"):
        list(parse_sacct(lines, UTC, SacctOptions(delimiter=";")))
    (job,) = parse_sacct(lines, UTC, SacctOptions(delimiter=";", machine="brecca"))
    assert (job.cluster, job.account, job.cpu_seconds) == ("brecca", "ProjA", 10800)


def test_parsable_output_with_a_trailing_delimiter():
    lines = [
        HEADER + "|",
        "5|c|p|u|2100-01-01T00:00:00|2100-01-01T01:00:00|01:00:00|3|COMPLETED|",
    ]
    (job,) = parse_sacct(lines, UTC)
    assert job.cpu_seconds == 10800


def test_parsable_output_with_a_delimiter_inside_a_field_and_at_the_end():
    lines = [
        "JobID|Cluster|Account|User|JobName|Partition|Start|End|Elapsed|AllocCPUS|"
        "State|",
        "6|c|p|u|a|b|std|2100-01-01T00:00:00|2100-01-01T01:00:00|01:00:00|1|COMPLETED|",
        # --parsable2 with an empty last column (NTasks) after such a field.
        "JobID|Cluster|Account|User|JobName|Partition|Start|End|Elapsed|AllocCPUS|"
        "State|NTasks",
    ]
    (job,) = parse_sacct(lines[:2], UTC)
    assert (job.job_id, job.partition, job.cpu_seconds) == ("6", "std", 3600)
    (job,) = parse_sacct([lines[2], lines[1]], UTC)
    assert (job.job_id, job.partition, job.cpu_seconds) == ("6", "std", 3600)


def test_a_delimiter_inside_a_field_is_put_back_where_only_one_column_fits():
    lines = [
        HEADER + "|Constraints|JobName",
        "7|c|p|u|2100-01-01T00:00:00|2100-01-01T01:00:00|01:00:00|2|COMPLETED"
        "|[broadwell|skylake]|run",
        "8|c|p|u|2100-01-01T00:00:00|2100-01-01T01:00:00|01:00:00|2|COMPLETED|x|a|b",
        "9|c|p|u|2100-01-01T00:00:00|2100-01-01T01:00:00|01:00:00|2|COMPLETED|x",
    ]
    seven, eight, nine = parse_sacct(lines, UTC)
    assert isinstance(seven, SacctJob) and seven.cpu_seconds == 7200
    # Either column may hold it: side by side, both read the same job.
    assert isinstance(eight, SacctJob) and eight.cpu_seconds == 7200
    assert nine == LineProblem(4, "expected 11 fields, found 10")
    # Readings that differ in a charged field (here the account) are refused.
    lines = [
        "JobName|Account|Comment|JobID|Cluster|User|Start|End|Elapsed|AllocCPUS",
        "a|b|p|x|7|c|u|2100-01-01T00:00:00|2100-01-01T01:00:00|01:00:00|2",
    ]
    (both,) = parse_sacct(lines, UTC)
    assert isinstance(both, LineProblem)
    assert "several columns could hold it" in both.message
    # A reading that would leave a bracket open in another field loses.
    lines = [
        "JobID|Cluster|Account|JobName|Partition|Constraints|Start|End|Elapsed"
        "|AllocCPUS|State",
        "3|c|p|ok|std|[x|y]|2100-01-01T00:00:00|2100-01-01T01:00:00|01:00:00|2"
        "|COMPLETED",
    ]
    (job,) = parse_sacct(lines, UTC)
    assert (job.partition, job.cpu_seconds) == ("std", 7200)
    # With only one free-text column, any count of extra fields goes there.
    lines = [
        HEADER + "|JobName",
        "7|c|p|u|2100-01-01T00:00:00|2100-01-01T01:00:00|01:00:00|2|COMPLETED|a|b|c",
    ]
    (job,) = parse_sacct(lines, UTC)
    assert job.cpu_seconds == 7200


@pytest.mark.parametrize(
    ("start", "end", "elapsed", "zone", "message"),
    [
        ("2100-01-01T00:00:00", "2100-01-02T00:00:00", "9999-00:00:00", "UTC", "366"),
        ("2100-01-01T00:00:00", "9999-12-31T23:59:59", "01:00:00", "UTC", "spans more"),
        (
            "9999-12-31T22:00:00",
            "9999-12-31T23:00:00",
            "01:00:00",
            "America/New_York",
            "out of range",
        ),
        ("2100-01-01T00:00:00", "2100-01-01T01:00:00", "1:2:3:4", "UTC", "Elapsed"),
    ],
)
def test_impossible_lines_are_problems(start, end, elapsed, zone, message):
    lines = [HEADER, f"1|c|p|u|{start}|{end}|{elapsed}|2|COMPLETED"]
    (problem,) = parse_sacct(lines, ZoneInfo(zone))
    assert isinstance(problem, LineProblem)
    assert message in problem.message


def hours_by_day(job: SacctJob) -> list[tuple[date, float]]:
    return [(day, seconds / 3600) for day, seconds in job.days]


@pytest.mark.parametrize(
    ("zone", "start", "end", "elapsed", "cpus", "days"),
    [
        # Zurich, clocks forward on 28 March 2100: 71 hours, not 72.
        (
            "Europe/Zurich",
            "2100-03-27T12:00:00",
            "2100-03-30T12:00:00",
            "2-23:00:00",
            100,
            [(27, 1200.0), (28, 2300.0), (29, 2400.0), (30, 1200.0)],
        ),
        # Zurich, clocks back on 31 October 2100: a 25-hour day.
        (
            "Europe/Zurich",
            "2100-10-30T12:00:00",
            "2100-11-01T00:00:00",
            "1-13:00:00",
            10,
            [(30, 120.0), (31, 250.0)],
        ),
        # Sydney, clocks forward on 3 October 2100: 01:00 to 06:00 is 4 hours.
        (
            "Australia/Sydney",
            "2100-10-03T01:00:00",
            "2100-10-03T06:00:00",
            "04:00:00",
            2,
            [(3, 8.0)],
        ),
        # Sydney, clocks back on 4 April 2100: 01:00 to 06:00 is 6 hours.
        (
            "Australia/Sydney",
            "2100-04-03T22:00:00",
            "2100-04-04T06:00:00",
            "09:00:00",
            2,
            [(3, 4.0), (4, 14.0)],
        ),
    ],
)
def test_days_split_exactly_across_daylight_saving(
    zone, start, end, elapsed, cpus, days
):
    lines = [HEADER, f"1|c|p|u|{start}|{end}|{elapsed}|{cpus}|COMPLETED"]
    (job,) = parse_sacct(lines, ZoneInfo(zone))
    assert isinstance(job, SacctJob), job
    assert sum(seconds for _day, seconds in job.days) == job.cpu_seconds
    assert job.cpu_seconds == cpus * job.elapsed_seconds
    assert [(day.day, hours) for day, hours in hours_by_day(job)] == days


def test_a_time_in_the_repeated_hour_is_read_as_elapsed_says():
    # Sydney's 02:30 happens twice on 4 April 2100; Elapsed tells which one.
    lines = [
        HEADER,
        "1|c|p|u|2100-04-04T01:30:00|2100-04-04T02:30:00|02:00:00|1|COMPLETED",
        "2|c|p|u|2100-04-04T01:30:00|2100-04-04T02:30:00|01:00:00|1|COMPLETED",
    ]
    later, earlier = parse_sacct(lines, ZoneInfo("Australia/Sydney"))
    assert (later.ended - later.started).total_seconds() == 7200
    assert (earlier.ended - earlier.started).total_seconds() == 3600

"""Reading sacct in a child process gives what reading it here gives."""

from __future__ import annotations

import os
import signal
import sys
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import psutil
import pytest

from allocation import sacct_stream
from allocation.importing import import_sacct
from allocation.sacct import SacctFormatError, SacctOptions, parse_format
from allocation.sacct_stream import (
    CPU_SECONDS,
    DAYS,
    JOB_FIELDS,
    USER,
    ParserStopped,
    parsed_chunks,
)
from tests.allocation.example import build_kep_site, eight_days_of_cpu
from tracker.extensions import db

SAMPLES = Path(__file__).with_name("samples")
ZURICH = ZoneInfo("Europe/Zurich")
HEADER = "JobID|Cluster|Account|User|Partition|Start|End|Elapsed|AllocCPUS|State"


def sample_lines(name: str) -> list[str]:
    return (SAMPLES / name).read_text(encoding="utf-8").splitlines(keepends=True)


@pytest.fixture(autouse=True)
def child_past_the_first_line(monkeypatch):
    """Every input longer than a line is read by a child process."""
    monkeypatch.setattr(sacct_stream, "IN_PROCESS_LINES", 1)


def read(lines, *, child: bool, options=None, chunk_size=7):
    """All chunks, read here or (past the first line) by a child process."""
    if not child:
        lines = list(lines)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sacct_stream, "IN_PROCESS_LINES", len(lines) + 1)
            return list(parsed_chunks(lines, ZURICH, options, chunk_size))
    return list(parsed_chunks(lines, ZURICH, options, chunk_size))


def children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


XDMOD_FORMAT = parse_format(
    "jobid,jobidraw,cluster,partition,qos,account,group,gid,user,uid,submit,"
    "eligible,start,end,elapsed,exitcode,state,nnodes,ncpus,reqcpus,reqmem,"
    "reqtres,alloctres,timelimit,nodelist,jobname"
)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("xdmod-accounting-logs.log", SacctOptions(format=XDMOD_FORMAT)),
        ("slurmsim-micro-cluster.out", None),
    ],
)
def test_a_real_file_reads_the_same_in_a_child_process(name, options):
    lines = sample_lines(name)
    here = read(lines, child=False, options=options)
    there = read(lines, child=True, options=options)
    assert there == here
    assert any(chunk.jobs for chunk in here)
    assert [chunk.lines for chunk in there][:-1] == [7] * (len(there) - 1)


def test_days_problems_and_skips_cross_the_pipe_whole():
    lines = [
        HEADER,
        # Three local days, across the autumn change of clocks in Zurich.
        "1|brecca|p|u|main|2100-10-30T12:00:00|2100-11-01T12:00:00|2-01:00:00|3|COMPLETED",
        "1.batch|brecca|p|u|main|2100-10-30T12:00:00|2100-11-01T12:00:00|2-01:00:00|3|COMPLETED",
        "2|brecca|p|u|main|Unknown|Unknown|00:00:00|1|PENDING",
        "3|brecca|p|u|main|2100-01-02T00:00:00|2100-01-02T01:00:00|1 hour|2|FAILED",
        "4|brecca|p|ü|main|2100-01-02T00:00:00|2100-01-02T01:00:00|01:00:00|2|COMPLETED",
    ]
    (chunk,) = read(lines, child=True, chunk_size=100)
    assert chunk == read(lines, child=False, chunk_size=100)[0]
    assert (chunk.lines, chunk.skipped, chunk.not_started) == (5, 2, 1)
    assert [line for line, _message in chunk.problems] == [5]
    job, unicode_user = chunk.jobs
    assert len(job) == len(JOB_FIELDS)
    assert [day for day, _seconds in job[DAYS]] == [
        date(2100, 10, 30).toordinal(),
        date(2100, 10, 31).toordinal(),
        date(2100, 11, 1).toordinal(),
    ]
    assert sum(seconds for _day, seconds in job[DAYS]) == job[CPU_SECONDS]
    assert job[CPU_SECONDS] == 3 * 49 * 3600
    assert unicode_user[USER] == "ü"


def test_a_file_the_child_cannot_read_is_refused_with_its_reason():
    headerless = ["1|brecca|p|u|main|2100-01-02T00:00:00|2100-01-02T01:00:00"] * 3
    with pytest.raises(SacctFormatError, match="not a sacct header"):
        read(headerless, child=True)


def test_an_error_reading_the_lines_reaches_the_import():
    def broken():
        yield HEADER
        yield "1|brecca|p|u|main|2100-01-02T00:00:00|2100-01-02T01:00:00|01:00:00|2|X"
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    with pytest.raises(UnicodeDecodeError):
        read(broken(), child=True)


def test_a_child_killed_midway_stops_the_import_with_a_reason():
    line = "{}|brecca|p|u|main|2100-01-02T00:00:00|2100-01-02T01:00:00|01:00:00|2|X"
    lines = [HEADER, *(line.format(n) for n in range(50_000))]
    before = children()
    chunks = parsed_chunks(iter(lines), ZURICH, None, 100)
    first = next(chunks)
    assert first.lines == 100
    (child,) = children() - before
    os.kill(child, signal.SIGKILL)
    with pytest.raises(ParserStopped, match="exit -9"):
        for _chunk in chunks:
            pass
    assert children() <= before


def test_an_import_that_stops_early_leaves_no_child_behind():
    line = "{}|brecca|p|u|main|2100-01-02T00:00:00|2100-01-02T01:00:00|01:00:00|2|X"
    lines = [HEADER, *(line.format(n) for n in range(200_000))]
    before = children()
    chunks = parsed_chunks(iter(lines), ZURICH, None, 100)
    next(chunks)
    assert children() - before
    chunks.close()
    assert children() <= before


def test_an_app_embedded_in_a_server_that_is_not_python_reads_here(monkeypatch):
    lines = sample_lines("slurmsim-micro-cluster.out")
    expected = read(lines, child=False)
    monkeypatch.setattr(sys, "executable", "/usr/sbin/uwsgi")
    before = children()
    chunks = parsed_chunks(iter(lines), ZURICH, None, 7)
    first = next(chunks)
    assert children() == before
    assert [first, *chunks] == expected


def test_an_import_that_fails_storing_a_chunk_stops_its_reader(app):
    def refuse(_chunk):
        raise RuntimeError("the disk is full")

    with app.app_context():
        build_kep_site()
        before = children()
        with pytest.raises(RuntimeError, match="the disk is full"):
            import_sacct(
                db.session,
                eight_days_of_cpu() * 3,
                ZURICH,
                chunk_size=2,
                on_chunk=refuse,
            )
        assert children() <= before
        db.session.rollback()

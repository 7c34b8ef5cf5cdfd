"""Read Slurm accounting as ``sacct --parsable2`` prints it, one job per line.

The first line is the header naming the columns, in any order, for example::

    sacct --allusers --parsable2 --starttime 2100-01-01 \\
        --format JobID,Cluster,Account,User,Partition,Start,End,Elapsed,AllocCPUS,State

Job steps (``123.batch``, ``123.0``) repeat their job's allocation and are skipped,
as are jobs that have not finished; a malformed line becomes a :class:`LineProblem`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

REQUIRED_COLUMNS = (
    "JobID",
    "Cluster",
    "Account",
    "Start",
    "End",
    "Elapsed",
    "AllocCPUS",
)
OPTIONAL_COLUMNS = ("User", "Partition", "State")
UNFINISHED_STATES = ("PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED")
NO_TIME = ("", "Unknown", "None")
MAX_FIELD_LENGTH = 64
SECONDS_PER_HOUR = 3600.0
MAX_JOB_SPAN = dt.timedelta(days=366)
UTC = dt.UTC


class SacctFormatError(ValueError):
    """The file as a whole cannot be read (no header, missing columns)."""


@dataclass(frozen=True, slots=True)
class LineProblem:
    """A line that was skipped because it is malformed."""

    line: int
    message: str


@dataclass(frozen=True, slots=True)
class SkippedLine:
    """A well-formed line that charges nothing: a job step or an unfinished job."""

    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class SacctJob:
    """One finished job; ``days`` splits its CPU hours over local calendar days."""

    line: int
    cluster: str
    job_id: str
    account: str
    user: str
    partition: str
    started: dt.datetime
    ended: dt.datetime
    elapsed_seconds: int
    cpus: int
    days: tuple[tuple[dt.date, float], ...]

    @property
    def cpu_hours(self) -> float:
        return self.cpus * self.elapsed_seconds / SECONDS_PER_HOUR


def parse_elapsed(text: str) -> int:
    """Return the seconds of an ``[D-][HH:]MM:SS`` duration; ValueError if malformed."""
    days = 0
    if "-" in text:
        day_text, text = text.split("-", 1)
        if not day_text.isdigit():
            raise ValueError("days")
        days = int(day_text)
    parts = text.split(":")
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise ValueError("clock")
    numbers = [int(p) for p in parts]
    if len(numbers) == 2:
        numbers.insert(0, 0)
    hours, minutes, seconds = numbers
    if minutes >= 60 or seconds >= 60:
        raise ValueError("minutes or seconds")
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def local_time(text: str, zone: ZoneInfo) -> dt.datetime:
    """Read a sacct time (local to the cluster unless it carries an offset)."""
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment


def split_by_day(
    started: dt.datetime, ended: dt.datetime, hours: float, zone: ZoneInfo
) -> tuple[tuple[dt.date, float], ...]:
    """Share ``hours`` among the local days that [started, ended) touches."""
    start_local, end_local = started.astimezone(zone), ended.astimezone(zone)
    if start_local.date() == end_local.date() or ended <= started:
        return ((start_local.date(), hours),)
    # Subtract in UTC: aware datetimes in one zone subtract as wall-clock times.
    span = (ended - started).total_seconds()
    pieces = []
    day = start_local.date()
    piece_start = started
    while day <= end_local.date():
        next_midnight = dt.datetime.combine(
            day + dt.timedelta(days=1), dt.time(), tzinfo=zone
        ).astimezone(UTC)
        piece_end = min(next_midnight, ended.astimezone(UTC))
        seconds = (piece_end - piece_start.astimezone(UTC)).total_seconds()
        if seconds > 0:
            pieces.append((day, hours * seconds / span))
        piece_start = piece_end
        day += dt.timedelta(days=1)
    return tuple(pieces)


def read_header(
    line: str,
    number: int = 1,
    required: tuple[str, ...] = REQUIRED_COLUMNS,
    kind: str = "sacct --parsable2",
) -> dict[str, int]:
    """Return the position of each column of a ``|``-separated header line;
    SacctFormatError naming the missing ones."""
    names = line.rstrip("\r\n").split("|")
    positions = {name: index for index, name in enumerate(names)}
    missing = [name for name in required if name not in positions]
    if missing:
        raise SacctFormatError(
            f"line {number}: not a {kind} header; missing column(s) "
            + ", ".join(missing)
            + " (needs "
            + "|".join(required)
            + ")"
        )
    return positions


def parse_line(
    number: int, line: str, positions: dict[str, int], zone: ZoneInfo
) -> SacctJob | SkippedLine | LineProblem:
    """Turn one data line into a job, a skip or a problem naming the line."""
    fields = line.rstrip("\r\n").split("|")
    if len(fields) != len(positions):
        return LineProblem(
            number, f"expected {len(positions)} fields, found {len(fields)}"
        )

    def field(name: str) -> str:
        index = positions.get(name)
        return fields[index].strip() if index is not None else ""

    job_id = field("JobID")
    if not job_id:
        return LineProblem(number, "JobID is empty")
    if "." in job_id:
        return SkippedLine(number, "job step")
    state = field("State").split(" ")[0]
    if state in UNFINISHED_STATES or field("End") in NO_TIME:
        return SkippedLine(number, "not finished")
    for name in ("Cluster", "Account"):
        if not field(name):
            return LineProblem(number, f"{name} is empty")
    for name in ("JobID", "Cluster", "Account", "User", "Partition"):
        if len(field(name)) > MAX_FIELD_LENGTH:
            return LineProblem(
                number, f"{name} is longer than {MAX_FIELD_LENGTH} characters"
            )
    try:
        started = local_time(field("Start"), zone)
    except ValueError:
        return LineProblem(number, f"Start {field('Start')!r} is not a time")
    try:
        ended = local_time(field("End"), zone)
    except ValueError:
        return LineProblem(number, f"End {field('End')!r} is not a time")
    if ended < started:
        return LineProblem(number, "End is before Start")
    if ended - started > MAX_JOB_SPAN:
        # No job runs for years: such a line would only spread junk over days.
        return LineProblem(
            number, f"Start to End spans more than {MAX_JOB_SPAN.days} days"
        )
    try:
        elapsed = parse_elapsed(field("Elapsed"))
    except ValueError:
        return LineProblem(
            number, f"Elapsed {field('Elapsed')!r} is not [D-][HH:]MM:SS"
        )
    cpus_text = field("AllocCPUS")
    if not (cpus_text.isascii() and cpus_text.isdigit()) or len(cpus_text) > 9:
        return LineProblem(number, f"AllocCPUS {cpus_text!r} is not a whole number")
    cpus = int(cpus_text)
    hours = cpus * elapsed / SECONDS_PER_HOUR
    return SacctJob(
        line=number,
        cluster=field("Cluster"),
        job_id=job_id,
        account=field("Account"),
        user=field("User"),
        partition=field("Partition"),
        started=started.astimezone(UTC),
        ended=ended.astimezone(UTC),
        elapsed_seconds=elapsed,
        cpus=cpus,
        days=split_by_day(started, ended, hours, zone),
    )


def parse_sacct(
    lines: Iterable[str], zone: ZoneInfo
) -> Iterator[SacctJob | SkippedLine | LineProblem]:
    """Yield a job, a skip or a problem for each data line after the header."""
    numbered = enumerate(lines, start=1)
    positions = None
    for number, line in numbered:
        if not line.strip():
            continue
        if positions is None:
            positions = read_header(line, number)
            continue
        yield parse_line(number, line, positions, zone)
    if positions is None:
        raise SacctFormatError("the file is empty: no sacct --parsable2 header")

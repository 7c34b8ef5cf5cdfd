"""Read Slurm accounting as sites produce it with ``sacct --parsable2``.

The columns come from the header line, in any order, or, for output printed with
``--noheader``, from the same ``--format`` list that was given to sacct::

    sacct --allusers --parsable2 --allocations --duplicates \\
        --starttime 2100-01-01 \\
        --format JobID,Cluster,Account,User,Partition,Start,End,Elapsed,AllocCPUS,State

Names are matched case-insensitively and sacct's aliases are understood: CPUs
from ``AllocCPUS``, ``NCPUS`` or ``AllocTRES`` (``cpu=N``), run time from
``Elapsed`` or ``ElapsedRaw``, or CPU seconds straight from ``CPUTimeRAW``. A file
without a ``Cluster`` column is read for the machine the caller names.

Job steps (``123.batch``, ``123+0.0``) repeat their job's allocation and are
skipped; array tasks (``123_4``) and heterogeneous job components (``123+1``)
are jobs of their own. Jobs that never started are skipped and counted; each run
of a requeued job (``--duplicates``) is charged. A malformed, impossible or
unknown-state line becomes a :class:`LineProblem`; nothing aborts the reading.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple
from zoneinfo import ZoneInfo

MAX_FIELD_LENGTH = 64
SECONDS_PER_HOUR = 3600.0
MAX_JOB_SPAN = dt.timedelta(days=366)
MAX_JOB_SPAN_SECONDS = int(MAX_JOB_SPAN.total_seconds())
MAX_CPUS = 10**8
UTC = dt.UTC
NO_TIME = ("", "unknown", "none")
DEFAULT_DELIMITER = "|"

# sacct's column names (lower-case) that this reader uses, by what they give.
JOB_ID_COLUMNS = ("jobid", "jobidraw")
CPU_COLUMNS = ("alloccpus", "ncpus", "alloctres")
ELAPSED_COLUMNS = ("elapsed", "elapsedraw")
USED_COLUMNS = frozenset(
    (
        *JOB_ID_COLUMNS,
        *CPU_COLUMNS,
        *ELAPSED_COLUMNS,
        "cputimeraw",
        "cluster",
        "account",
        "user",
        "partition",
        "start",
        "end",
        "state",
    )
)
# States of a job record that has ended and used its allocation. A REQUEUED or
# RESIZING record is one finished run of a job that went on in another record.
CHARGED_STATES = frozenset(
    (
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "RESIZING",
        "REVOKED",
        "SPECIAL_EXIT",
        "TIMEOUT",
    )
)
UNFINISHED_STATES = frozenset(
    (
        "PENDING",
        "RUNNING",
        "SUSPENDED",
        "STOPPED",
        "COMPLETING",
        "CONFIGURING",
        "SIGNALING",
        "STAGE_OUT",
        "RESV_DEL_HOLD",
        "POWER_UP_NODE",
        "UPDATE_DB",
    )
)

# What a byte that is not UTF-8 reads as (files are opened with
# errors="replace"): such a line is reported, the others imported.
NOT_TEXT = "\ufffd"
NOT_TEXT_PROBLEM = "not UTF-8 text (a byte that no UTF-8 character starts with)"

SKIP_STEP = "job step"
SKIP_UNFINISHED = "not finished"
SKIP_NOT_STARTED = "never started"


class SacctFormatError(ValueError):
    """The file as a whole cannot be read (no header, missing columns)."""


@dataclass(frozen=True, slots=True)
class LineProblem:
    """A line that was skipped because it is malformed."""

    line: int
    message: str


@dataclass(frozen=True, slots=True)
class SkippedLine:
    """A well-formed line that charges nothing: a step, an unfinished or
    never-started job."""

    line: int
    reason: str


class SacctJob(NamedTuple):
    """One finished job run; ``days`` splits its CPU seconds over local days.

    A named tuple: a million of them are made in a large import. ``begin`` and
    ``finish`` are its Unix seconds, ``first_day`` and ``last_day`` its local
    days; the split is made only when asked for (a re-import never needs it).
    """

    line: int
    cluster: str
    job_id: str
    account: str
    user: str
    partition: str
    elapsed_seconds: int
    cpus: int
    cpu_seconds: int
    begin: int
    finish: int
    first_day: dt.date
    last_day: dt.date
    zone: ZoneInfo

    @property
    def cpu_hours(self) -> float:
        return self.cpu_seconds / SECONDS_PER_HOUR

    @property
    def started(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.begin, UTC)

    @property
    def ended(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.finish, UTC)

    @property
    def day_ordinals(self) -> tuple[tuple[int, int], ...]:
        """(local day's ordinal, CPU seconds) for each day the run touches."""
        return split_ordinals(
            self.begin,
            self.finish,
            self.first_day.toordinal(),
            self.last_day.toordinal(),
            self.cpu_seconds,
            self.zone,
        )

    @property
    def days(self) -> tuple[tuple[dt.date, int], ...]:
        """(local day, CPU seconds) for each day the run touches."""
        return _split(
            self.begin,
            self.finish,
            self.first_day,
            self.last_day,
            self.cpu_seconds,
            self.zone,
        )


@dataclass(frozen=True)
class SacctOptions:
    """How a file was produced: its ``--format`` (when printed with
    ``--noheader``), its ``--delimiter``, and the machine it comes from."""

    format: Sequence[str] | None = None
    delimiter: str = DEFAULT_DELIMITER
    machine: str | None = None


def parse_format(text: str) -> list[str]:
    """Read a ``--format`` list (``JobID,Cluster%20,...``) as column names."""
    names = []
    for part in text.replace(" ", ",").split(","):
        name = part.split("%", 1)[0].strip()
        if name:
            names.append(name)
    if not names:
        raise SacctFormatError("the format lists no column")
    return names


def parse_elapsed(text: str) -> int:
    """Return the seconds of a ``[D-][HH:]MM:SS[.fff]`` duration; ValueError if
    malformed."""
    days = 0
    if "-" in text:
        day_text, text = text.split("-", 1)
        if not (day_text.isascii() and day_text.isdigit()) or len(day_text) > 6:
            raise ValueError("days")
        days = int(day_text)
    if "." in text:
        text, fraction = text.split(".", 1)
        if not (fraction.isascii() and fraction.isdigit()):
            raise ValueError("fraction")
    parts = text.split(":")
    if not 2 <= len(parts) <= 3 or not all(
        p.isascii() and p.isdigit() and len(p) <= 6 for p in parts
    ):
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


def _is_ambiguous(moment: dt.datetime) -> bool:
    """True for a wall-clock time that occurs twice (the hour a clock goes back)."""
    return moment.replace(fold=1).utcoffset() != moment.utcoffset()


def _timestamp(moment: dt.datetime) -> int:
    return int(moment.timestamp())


def _disambiguate(
    started: dt.datetime, ended: dt.datetime, elapsed: int | None
) -> tuple[dt.datetime, dt.datetime]:
    """Pick, for times in the repeated hour, the reading that fits Elapsed."""
    starts = [started]
    ends = [ended]
    if started.utcoffset() is not None and _is_ambiguous(started):
        starts.append(started.replace(fold=1))
    if ended.utcoffset() is not None and _is_ambiguous(ended):
        ends.append(ended.replace(fold=1))
    if len(starts) == len(ends) == 1:
        return started, ended
    candidates = [(s, e) for s in starts for e in ends if e >= s]
    if not candidates:
        return started, ended
    if elapsed is None:
        return candidates[0]
    return min(
        candidates,
        key=lambda pair: abs(_timestamp(pair[1]) - _timestamp(pair[0]) - elapsed),
    )


_MIDNIGHTS: dict[tuple[ZoneInfo, dt.date], int] = {}


def _midnight(day: dt.date, zone: ZoneInfo) -> int:
    """The instant (Unix seconds) at which ``day`` begins in ``zone``."""
    key = (zone, day)
    moment = _MIDNIGHTS.get(key)
    if moment is None:
        moment = _timestamp(dt.datetime.combine(day, dt.time(), tzinfo=zone))
        if len(_MIDNIGHTS) > 100_000:
            _MIDNIGHTS.clear()
        _MIDNIGHTS[key] = moment
    return moment


_STEADY: dict[tuple[ZoneInfo, dt.date], int | None] = {}
ONE_DAY = dt.timedelta(days=1)
DAY_SECONDS = 86400
FIRST_STEADY, LAST_STEADY = dt.date(2, 1, 1), dt.date(9999, 12, 30)


def _steady_midnight(day: dt.date, zone: ZoneInfo) -> int | None:
    """When ``day`` begins in ``zone`` (Unix seconds) if the clock keeps one
    offset all that day, so that a wall-clock time on it is midnight plus its
    seconds; None on a day the clocks change."""
    key = (zone, day)
    try:
        return _STEADY[key]
    except KeyError:
        pass
    steady = None
    # Days at the ends of the calendar are read by the zone, with checks.
    if FIRST_STEADY <= day <= LAST_STEADY:
        following = day + ONE_DAY
        start, end = _midnight(day, zone), _midnight(following, zone)
        same = (
            dt.datetime.combine(day, dt.time(), tzinfo=zone).utcoffset()
            == dt.datetime.combine(following, dt.time(), tzinfo=zone).utcoffset()
        )
        steady = start if same and end - start == DAY_SECONDS else None
    if len(_STEADY) > 100_000:
        _STEADY.clear()
    _STEADY[key] = steady
    return steady


def _check_instants(*instants: int) -> None:
    """OverflowError unless every Unix time is one a datetime can hold in UTC."""
    for instant in instants:
        dt.datetime.fromtimestamp(instant, UTC)


def _seconds_of_day(moment: dt.datetime) -> int:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def split_by_day(
    started: dt.datetime, ended: dt.datetime, cpu_seconds: int, zone: ZoneInfo
) -> tuple[tuple[dt.date, int], ...]:
    """Share ``cpu_seconds`` among the local days that [started, ended) touches.

    Each day gets its share of the job's real (UTC) duration; whole CPU seconds
    are handed out by largest remainder, so the days add up to the total exactly,
    across daylight-saving changes too.
    """
    return _split(
        _timestamp(started),
        _timestamp(ended),
        started.astimezone(zone).date(),
        ended.astimezone(zone).date(),
        cpu_seconds,
        zone,
    )


def _split(
    begin: int,
    finish: int,
    first_day: dt.date,
    last_day: dt.date,
    cpu_seconds: int,
    zone: ZoneInfo,
) -> tuple[tuple[dt.date, int], ...]:
    return tuple(
        (dt.date.fromordinal(ordinal), seconds)
        for ordinal, seconds in split_ordinals(
            begin,
            finish,
            first_day.toordinal(),
            last_day.toordinal(),
            cpu_seconds,
            zone,
        )
    )


_MIDNIGHT_ORDINALS: dict[tuple[ZoneInfo, int], int] = {}


def _midnight_of(ordinal: int, zone: ZoneInfo) -> int:
    """The instant (Unix seconds) at which day ``ordinal`` begins in ``zone``."""
    key = (zone, ordinal)
    moment = _MIDNIGHT_ORDINALS.get(key)
    if moment is None:
        moment = _midnight(dt.date.fromordinal(ordinal), zone)
        if len(_MIDNIGHT_ORDINALS) > 100_000:
            _MIDNIGHT_ORDINALS.clear()
        _MIDNIGHT_ORDINALS[key] = moment
    return moment


def split_ordinals(
    begin: int,
    finish: int,
    first_ordinal: int,
    last_ordinal: int,
    cpu_seconds: int,
    zone: ZoneInfo,
) -> tuple[tuple[int, int], ...]:
    """Share ``cpu_seconds`` of the run [begin, finish) (Unix seconds) among
    the local days it touches, given as date ordinals: (ordinal, seconds).

    Each day gets its share of the run's real duration; whole CPU seconds are
    handed out by largest remainder, so the days add up to the total exactly.
    """
    if first_ordinal == last_ordinal or finish <= begin:
        return ((first_ordinal, cpu_seconds),)
    span = finish - begin
    pieces: list[tuple[int, int]] = []
    piece_start = begin
    for ordinal in range(first_ordinal, last_ordinal + 1):
        piece_end = _midnight_of(ordinal + 1, zone)
        if piece_end > finish:
            piece_end = finish
        if piece_end > piece_start:
            pieces.append((ordinal, piece_end - piece_start))
        piece_start = piece_end
    shares = [divmod(cpu_seconds * seconds, span) for _day, seconds in pieces]
    short = cpu_seconds - sum(whole for whole, _rest in shares)
    if not short:
        return tuple(
            (ordinal, whole)
            for (ordinal, _s), (whole, _r) in zip(pieces, shares, strict=True)
        )
    # Hand the seconds lost to rounding down to the days with most left over.
    by_remainder = sorted(range(len(shares)), key=lambda i: -shares[i][1])
    extra = set(by_remainder[:short])
    return tuple(
        (ordinal, shares[i][0] + (1 if i in extra else 0))
        for i, (ordinal, _seconds) in enumerate(pieces)
    )


def read_header(
    line: str,
    number: int = 1,
    required: tuple[str, ...] = (),
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


@dataclass(frozen=True)
class Columns:
    """The position of each column the reader uses (None when absent)."""

    job: int
    state: int | None
    start: int
    end: int
    elapsed: int | None
    elapsed_raw: int | None
    cpus: int | None
    cpus_name: str
    tres: int | None
    cpu_time: int | None
    cluster: int | None
    account: int
    user: int | None
    partition: int | None


@dataclass(frozen=True)
class Layout:
    """Where each column sits in a line, and which columns may hold free text."""

    count: int
    at: Columns
    free_text: tuple[int, ...]
    delimiter: str
    machine: str | None


def layout_for(names: Sequence[str], options: SacctOptions, where: str) -> Layout:
    """Check that ``names`` (a header or a format) give what charging needs."""
    cleaned = [name.strip() for name in names]
    if cleaned and cleaned[-1] == "":
        cleaned.pop()  # ``--parsable`` ends every line with the delimiter
    columns: dict[str, int] = {}
    for index, name in enumerate(cleaned):
        columns.setdefault(name.lower(), index)
    missing = []
    if not any(name in columns for name in JOB_ID_COLUMNS):
        missing.append("JobID (or JobIDRaw)")
    for name in ("account", "start", "end"):
        if name not in columns:
            missing.append({"account": "Account", "start": "Start", "end": "End"}[name])
    has_cpu_time = "cputimeraw" in columns
    if not has_cpu_time and not any(name in columns for name in CPU_COLUMNS):
        missing.append("AllocCPUS (or NCPUS, AllocTRES, CPUTimeRAW)")
    if not has_cpu_time and not any(name in columns for name in ELAPSED_COLUMNS):
        missing.append("Elapsed (or ElapsedRaw, CPUTimeRAW)")
    if "cluster" not in columns and not options.machine:
        missing.append("Cluster (or name the machine the file comes from)")
    if missing:
        raise SacctFormatError(
            f"{where}: missing column(s) "
            + ", ".join(missing)
            + "; columns found: "
            + (",".join(cleaned) or "none")
        )
    free_text = tuple(
        index for index, name in enumerate(cleaned) if name.lower() not in USED_COLUMNS
    )
    cpus_name = "alloccpus" if "alloccpus" in columns else "ncpus"
    at = Columns(
        job=columns.get("jobid", columns.get("jobidraw")),
        state=columns.get("state"),
        start=columns["start"],
        end=columns["end"],
        elapsed=columns.get("elapsed"),
        elapsed_raw=columns.get("elapsedraw"),
        cpus=columns.get(cpus_name),
        cpus_name="AllocCPUS" if cpus_name == "alloccpus" else "NCPUS",
        tres=columns.get("alloctres"),
        cpu_time=columns.get("cputimeraw"),
        cluster=columns.get("cluster"),
        account=columns["account"],
        user=columns.get("user"),
        partition=columns.get("partition"),
    )
    return Layout(len(cleaned), at, free_text, options.delimiter, options.machine)


_ELAPSED_CACHE: dict[str, int] = {}


def _elapsed_seconds(text: str) -> int:
    # Durations repeat a lot in a day's accounting; remember recent ones.
    seconds = _ELAPSED_CACHE.get(text)
    if seconds is None:
        seconds = parse_elapsed(text)
        if len(_ELAPSED_CACHE) > 100_000:
            _ELAPSED_CACHE.clear()
        _ELAPSED_CACHE[text] = seconds
    return seconds


def _job_from_fields(
    number: int, fields: list[str], layout: Layout, zone: ZoneInfo
) -> SacctJob | SkippedLine | LineProblem:
    at = layout.at
    job_id = fields[at.job].strip()
    if not job_id:
        return LineProblem(number, "JobID is empty")
    if "." in job_id:
        return SkippedLine(number, SKIP_STEP)
    raw_state = fields[at.state].strip() if at.state is not None else ""
    state = raw_state.split(" ", 1)[0].upper() if raw_state else "COMPLETED"
    if state not in CHARGED_STATES and state not in UNFINISHED_STATES:
        return LineProblem(number, f"unknown state {raw_state!r}: not charged")
    start_text, end_text = fields[at.start].strip(), fields[at.end].strip()
    if start_text.lower() in NO_TIME:
        return SkippedLine(number, SKIP_NOT_STARTED)
    if state in UNFINISHED_STATES or end_text.lower() in NO_TIME:
        return SkippedLine(number, SKIP_UNFINISHED)
    if "_[" in job_id:
        return LineProblem(
            number, f"JobID {job_id!r} lists several array tasks in one line"
        )
    cluster = (fields[at.cluster].strip() if at.cluster is not None else "") or (
        layout.machine or ""
    )
    account = fields[at.account].strip()
    if not cluster:
        return LineProblem(number, "Cluster is empty")
    if not account:
        return LineProblem(number, "Account is empty")
    user = fields[at.user].strip() if at.user is not None else ""
    partition = fields[at.partition].strip() if at.partition is not None else ""
    if max(len(job_id), len(cluster), len(account), len(user), len(partition)) > (
        MAX_FIELD_LENGTH
    ):
        for name, value in (
            ("JobID", job_id),
            ("Cluster", cluster),
            ("Account", account),
            ("User", user),
            ("Partition", partition),
        ):
            if len(value) > MAX_FIELD_LENGTH:
                return LineProblem(
                    number, f"{name} is longer than {MAX_FIELD_LENGTH} characters"
                )

    elapsed: int | None = None
    raw_elapsed = fields[at.elapsed_raw].strip() if at.elapsed_raw is not None else ""
    elapsed_text = fields[at.elapsed].strip() if at.elapsed is not None else ""
    if raw_elapsed:
        if not (raw_elapsed.isascii() and raw_elapsed.isdigit()):
            return LineProblem(number, f"ElapsedRaw {raw_elapsed!r} is not a number")
        elapsed = int(raw_elapsed[:12])
    elif elapsed_text:
        try:
            elapsed = _elapsed_seconds(elapsed_text)
        except ValueError:
            return LineProblem(
                number, f"Elapsed {elapsed_text!r} is not [D-][HH:]MM:SS"
            )
    if elapsed is not None and elapsed > MAX_JOB_SPAN_SECONDS:
        return LineProblem(
            number, f"Elapsed is longer than {MAX_JOB_SPAN.days} days: impossible"
        )

    try:
        start_moment = dt.datetime.fromisoformat(start_text)
    except ValueError:
        return LineProblem(number, f"Start {start_text!r} is not a time")
    try:
        end_moment = dt.datetime.fromisoformat(end_text)
    except ValueError:
        return LineProblem(number, f"End {end_text!r} is not a time")
    try:
        times = _job_times(start_moment, end_moment, elapsed, zone)
    except (OverflowError, ValueError, OSError):
        return LineProblem(number, "Start or End is out of range")
    begin, finish, first_day, last_day = times
    if finish < begin:
        return LineProblem(number, "End is before Start")
    if finish - begin > MAX_JOB_SPAN_SECONDS:
        # No job runs for years: such a line would only spread junk over days.
        return LineProblem(
            number, f"Start to End spans more than {MAX_JOB_SPAN.days} days"
        )
    if elapsed is None:
        elapsed = finish - begin

    cpus: int | None = None
    cpus_text = fields[at.cpus].strip() if at.cpus is not None else ""
    if cpus_text:
        if not (cpus_text.isascii() and cpus_text.isdigit()) or len(cpus_text) > 9:
            return LineProblem(
                number, f"{at.cpus_name} {cpus_text!r} is not a whole number"
            )
        cpus = int(cpus_text)
    elif at.tres is not None and fields[at.tres].strip():
        cpus = _tres_cpus(fields[at.tres])
        if cpus is None:
            return LineProblem(number, "AllocTRES has no cpu=N")
    cpu_time_text = fields[at.cpu_time].strip() if at.cpu_time is not None else ""
    if cpu_time_text:
        if not (cpu_time_text.isascii() and cpu_time_text.isdigit()):
            return LineProblem(number, f"CPUTimeRAW {cpu_time_text!r} is not a number")
        cpu_seconds = int(cpu_time_text[:15])
        if cpus is None:
            cpus = round(cpu_seconds / elapsed) if elapsed else 0
    elif cpus is None:
        return LineProblem(number, "no CPU count: AllocCPUS, NCPUS and AllocTRES empty")
    else:
        cpu_seconds = cpus * elapsed
    if cpus > MAX_CPUS or cpu_seconds > MAX_CPUS * MAX_JOB_SPAN_SECONDS:
        return LineProblem(number, "CPU count or CPU time is impossibly large")
    return SacctJob(
        number,
        cluster,
        job_id,
        account,
        user,
        partition,
        elapsed,
        cpus,
        cpu_seconds,
        begin,
        finish,
        first_day,
        last_day,
        zone,
    )


def _job_times(
    start: dt.datetime, end: dt.datetime, elapsed: int | None, zone: ZoneInfo
) -> tuple[int, int, dt.date, dt.date]:
    """Unix seconds and local days of a run's Start and End.

    Times written without an offset are the cluster's wall clock: on a day
    the clocks keep one offset, a time is its local midnight plus its seconds
    (most lines); on a day they change, the zone reads it, and a time in the
    repeated hour takes the reading that fits Elapsed.
    """
    if start.tzinfo is None and end.tzinfo is None:
        first_day, last_day = start.date(), end.date()
        start_midnight = _steady_midnight(first_day, zone)
        end_midnight = _steady_midnight(last_day, zone)
        if start_midnight is not None and end_midnight is not None:
            begin = start_midnight + _seconds_of_day(start)
            finish = end_midnight + _seconds_of_day(end)
        else:
            started, ended = _disambiguate(
                start.replace(tzinfo=zone), end.replace(tzinfo=zone), elapsed
            )
            begin, finish = _timestamp(started), _timestamp(ended)
            _check_instants(begin, finish)
        return begin, finish, first_day, last_day
    # A time with an offset is an instant; one without is local.
    started, ended = _disambiguate(
        start if start.tzinfo else start.replace(tzinfo=zone),
        end if end.tzinfo else end.replace(tzinfo=zone),
        elapsed,
    )
    begin, finish = _timestamp(started), _timestamp(ended)
    _check_instants(begin, finish)
    return (
        begin,
        finish,
        dt.datetime.fromtimestamp(begin, zone).date(),
        dt.datetime.fromtimestamp(finish, zone).date(),
    )


def _tres_cpus(text: str) -> int | None:
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key.strip() == "cpu" and value.isascii() and value.isdigit():
            return int(value[:9])
    return None


def parse_line(
    number: int, line: str, layout: Layout, zone: ZoneInfo
) -> SacctJob | SkippedLine | LineProblem:
    """Turn one data line into a job, a skip or a problem naming the line."""
    fields = line.rstrip("\r\n").split(layout.delimiter)
    if len(fields) > layout.count and fields[-1] == "":
        # Most likely the trailing delimiter of ``--parsable``; else an empty
        # last column after a delimiter inside a field.
        read = _read_fields(number, fields[:-1], layout, zone)
        if not isinstance(read, LineProblem):
            return read
        again = _read_fields(number, fields, layout, zone)
        return read if isinstance(again, LineProblem) else again
    return _read_fields(number, fields, layout, zone)


def _read_fields(
    number: int, fields: list[str], layout: Layout, zone: ZoneInfo
) -> SacctJob | SkippedLine | LineProblem:
    count = layout.count
    if len(fields) == count:
        return _job_from_fields(number, fields, layout, zone)
    if len(fields) < count:
        return LineProblem(number, f"expected {count} fields, found {len(fields)}")
    return _with_delimiter_inside(number, fields, layout, zone)


def _with_delimiter_inside(
    number: int, fields: list[str], layout: Layout, zone: ZoneInfo
) -> SacctJob | SkippedLine | LineProblem:
    """Rejoin a free-text field (JobName, Constraints, ...) that held the delimiter.

    Each free-text column is tried as the one that held it; the line is read if
    the sound readings (brackets balanced in every field, every used field
    valid) agree on the job.
    """
    extra = len(fields) - layout.count
    readings = []
    for index in layout.free_text:
        joined = layout.delimiter.join(fields[index : index + extra + 1])
        candidate = [*fields[:index], joined, *fields[index + extra + 1 :]]
        result = _job_from_fields(number, candidate, layout, zone)
        if not isinstance(result, LineProblem):
            # A reading that leaves a bracket open in any field is less likely.
            balanced = all(_balanced(value) for value in candidate)
            readings.append((balanced, result))
    sound = [result for balanced, result in readings if balanced] or [
        result for _balanced, result in readings
    ]
    # Columns side by side (NodeList, JobName) read alike: the same job.
    if sound and all(result == sound[0] for result in sound):
        return sound[0]
    reason = "several columns could hold it" if sound else "no column can hold it"
    return LineProblem(
        number,
        f"expected {layout.count} fields, found {len(fields)}: a "
        f"{layout.delimiter!r} inside a field, and {reason}",
    )


def _balanced(text: str) -> bool:
    return text.count("[") == text.count("]") and text.count("(") == text.count(")")


def _matches_format(line: str, layout_names: Sequence[str], delimiter: str) -> bool:
    names = [name.strip().lower() for name in line.rstrip("\r\n").split(delimiter)]
    if names and names[-1] == "":
        names.pop()
    return names == [name.lower() for name in layout_names]


def parse_sacct(
    lines: Iterable[str],
    zone: ZoneInfo,
    options: SacctOptions | None = None,
) -> Iterator[SacctJob | SkippedLine | LineProblem]:
    """Yield a job, a skip or a problem for each data line.

    ``lines`` is any iterable of text lines (a list, an open text file, a
    stream); it is read once, line by line. Without ``options.format`` the first
    non-empty line is the header.
    """
    options = options or SacctOptions()
    layout = None
    format_names = list(options.format) if options.format else None
    if format_names is not None:
        layout = layout_for(format_names, options, "the format")
    header_checked = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if layout is None:
            names = line.rstrip("\r\n").split(options.delimiter)
            known = {name.strip().lower() for name in names} & USED_COLUMNS
            if not known:
                raise SacctFormatError(
                    f"line {number} is not a sacct header (no JobID, Account, "
                    "Start...): for output printed with --noheader, give the "
                    "--format list that was given to sacct"
                )
            layout = layout_for(names, options, f"line {number}")
            header_checked = True
            continue
        if not header_checked:
            header_checked = True
            # sacct prints the header unless told --noheader: skip it if there.
            if _matches_format(line, format_names, options.delimiter):
                continue
        if NOT_TEXT in line:
            yield LineProblem(number, NOT_TEXT_PROBLEM)
            continue
        try:
            yield parse_line(number, line, layout, zone)
        except (ValueError, OverflowError, ArithmeticError) as exc:
            yield LineProblem(number, f"cannot be read: {exc}")
    if layout is None:
        raise SacctFormatError("the file is empty: no sacct --parsable2 header")

"""Read disk-usage snapshots: how many bytes a project held on a machine, and when.

The format follows sacct's: a ``|``-separated header, then one snapshot a line::

    Project|Machine|Bytes|Time
    ProjectA|brecca|100000|2100-01-02T06:00:00

An optional ``Resource`` column names the file system when a machine has several.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from allocation.sacct import (
    MAX_FIELD_LENGTH,
    NOT_TEXT,
    NOT_TEXT_PROBLEM,
    LineProblem,
    SacctFormatError,
    local_time,
    read_header,
)

REQUIRED_COLUMNS = ("Project", "Machine", "Bytes", "Time")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One reading of a project's disk usage."""

    line: int
    project: str
    machine: str
    resource: str
    bytes: int
    taken: dt.datetime
    day: dt.date


def parse_snapshot_line(
    number: int, line: str, positions: dict[str, int], zone: ZoneInfo
) -> Snapshot | LineProblem:
    """Turn one data line into a snapshot or a problem naming the line."""
    fields = line.rstrip("\r\n").split("|")
    if len(fields) != len(positions):
        return LineProblem(
            number, f"expected {len(positions)} fields, found {len(fields)}"
        )

    def field(name: str) -> str:
        index = positions.get(name)
        return fields[index].strip() if index is not None else ""

    for name in ("Project", "Machine"):
        if not field(name):
            return LineProblem(number, f"{name} is empty")
    for name in ("Project", "Machine", "Resource"):
        if len(field(name)) > MAX_FIELD_LENGTH:
            return LineProblem(
                number, f"{name} is longer than {MAX_FIELD_LENGTH} characters"
            )
    raw_bytes = field("Bytes")
    if not (raw_bytes.isascii() and raw_bytes.isdigit()) or len(raw_bytes) > 18:
        return LineProblem(number, f"Bytes {field('Bytes')!r} is not a whole number")
    try:
        taken = local_time(field("Time"), zone)
    except ValueError:
        return LineProblem(number, f"Time {field('Time')!r} is not a time")
    return Snapshot(
        line=number,
        project=field("Project"),
        machine=field("Machine"),
        resource=field("Resource"),
        bytes=int(field("Bytes")),
        taken=taken.astimezone(dt.UTC),
        day=taken.astimezone(zone).date(),
    )


def parse_snapshots(
    lines: Iterable[str], zone: ZoneInfo
) -> Iterator[Snapshot | LineProblem]:
    """Yield a snapshot or a problem for each data line after the header."""
    positions = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if positions is None:
            positions = read_header(line, number, REQUIRED_COLUMNS, "snapshot")
            continue
        if NOT_TEXT in line:
            yield LineProblem(number, NOT_TEXT_PROBLEM)
            continue
        yield parse_snapshot_line(number, line, positions, zone)
    if positions is None:
        raise SacctFormatError("the file is empty: no snapshot header")

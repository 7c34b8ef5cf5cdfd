"""Read sacct lines in a second process while this one stores what they give.

Reading lines is about half of a large import's work. Past the first
``IN_PROCESS_LINES`` lines, a child process (``python -m allocation.sacct_stream``)
runs :func:`allocation.sacct.parse_sacct` over the lines this process hands it,
and sends back each chunk already in the form an import stores (:class:`ParsedChunk`,
its jobs' days split); this process stores one chunk while the child reads the next.
A shorter file is read here: starting a child would cost more than it saves.

Both pipes carry frames: a 4-byte big-endian length, then a pickle of plain
values (lists of lines one way, :class:`ParsedChunk` tuples the other). The pipes are
bounded, so memory is too: the child waits while a chunk is stored.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from itertools import chain, islice
from pathlib import Path
from typing import BinaryIO, NamedTuple
from zoneinfo import ZoneInfo

from allocation.sacct import (
    SKIP_NOT_STARTED,
    LineProblem,
    SacctFormatError,
    SacctJob,
    SacctOptions,
    SkippedLine,
    parse_sacct,
)

IN_PROCESS_LINES = 20_000
LINES_PER_FRAME = 5_000
_LENGTH = struct.Struct(">I")
_CHUNK, _FORMAT_ERROR = 0, 1
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


# A job run as an import stores it: a plain tuple (a million cross the pipe),
# its CPU seconds already shared among local days as (date ordinal, seconds).
JOB_FIELDS = (
    "line",
    "cluster",
    "job_id",
    "account",
    "user",
    "partition",
    "elapsed_seconds",
    "cpus",
    "cpu_seconds",
    "begin",
    "finish",
    "days",
)
(
    LINE,
    CLUSTER,
    JOB_ID,
    ACCOUNT,
    USER,
    PARTITION,
    ELAPSED_SECONDS,
    CPUS,
    CPU_SECONDS,
    BEGIN,
    FINISH,
    DAYS,
) = range(len(JOB_FIELDS))


class ParsedChunk(NamedTuple):
    """What a run of lines gave: its jobs (tuples laid out as ``JOB_FIELDS``),
    its problems as (line, message), and how many lines charge nothing."""

    lines: int
    jobs: list[tuple]
    problems: list[tuple[int, str]]
    skipped: int
    not_started: int


class ParserStopped(RuntimeError):
    """The child process reading the lines ended without finishing."""


def _gather(items: list[SacctJob | LineProblem | SkippedLine]) -> ParsedChunk:
    jobs, problems, skipped, not_started = [], [], 0, 0
    for item in items:
        if isinstance(item, SacctJob):
            jobs.append((*item[:11], item.day_ordinals))
        elif isinstance(item, LineProblem):
            problems.append((item.line, item.message))
        else:
            skipped += 1
            not_started += item.reason == SKIP_NOT_STARTED
    return ParsedChunk(len(items), jobs, problems, skipped, not_started)


def chunks(items: Iterable, size: int) -> Iterator[list]:
    """Yield ``items`` as lists of ``size`` (the last one shorter)."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def parsed_chunks(
    lines: Iterable[str],
    zone: ZoneInfo,
    options: SacctOptions | None,
    chunk_size: int,
) -> Iterator[ParsedChunk]:
    """Yield ``lines`` read as sacct output, ``chunk_size`` lines' results at a
    time; a long input is read by a child process meanwhile."""
    iterator = iter(lines)
    head = list(islice(iterator, IN_PROCESS_LINES))
    if len(head) < IN_PROCESS_LINES or zone.key is None or not _interpreter():
        # Short, a zone a child cannot name, or no Python to start: read here.
        results = parse_sacct(chain(head, iterator), zone, options)
        for items in chunks(results, chunk_size):
            yield _gather(items)
        return
    yield from _from_child(chain(head, iterator), zone, options, chunk_size)


def _interpreter() -> str | None:
    """The Python to start the child with: this one, unless the app runs
    embedded in a server that is not Python (uWSGI, mod_wsgi)."""
    executable = sys.executable
    if executable and Path(executable).name.startswith("python"):
        return executable
    return None


def _write_frame(stream: BinaryIO, value) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)))
    stream.write(data)


def _read_frame(stream: BinaryIO):
    """The next frame's value, or None at the end of the stream."""
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(header)
    data = stream.read(length)
    if len(data) < length:
        return None
    return pickle.loads(data)  # noqa: S301  (from our own process pair)


class _Feeder(threading.Thread):
    """Hands the lines to the child, a frame at a time; keeps what went wrong
    reading them, to be raised where the import runs."""

    def __init__(self, lines: Iterator[str], stream: BinaryIO):
        super().__init__(name="sacct-lines", daemon=True)
        self.lines = lines
        self.stream = stream
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while block := list(islice(self.lines, LINES_PER_FRAME)):
                try:
                    _write_frame(self.stream, block)
                except (BrokenPipeError, ValueError):
                    return  # the child stopped (or was stopped): the reader says why
        except BaseException as exc:
            self.error = exc
        finally:
            with contextlib.suppress(OSError):
                self.stream.close()


def _from_child(
    lines: Iterator[str],
    zone: ZoneInfo,
    options: SacctOptions | None,
    chunk_size: int,
) -> Iterator[ParsedChunk]:
    options = options or SacctOptions()
    arguments = json.dumps(
        {
            "zone": zone.key,
            "format": list(options.format) if options.format else None,
            "delimiter": options.delimiter,
            "machine": options.machine,
            "chunk_size": chunk_size,
        }
    )
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        path for path in (_PACKAGE_ROOT, environment.get("PYTHONPATH")) if path
    )
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(
            [_interpreter(), "-m", "allocation.sacct_stream", arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=environment,
        )
        feeder = _Feeder(lines, child.stdin)
        feeder.start()
        finished = False
        try:
            while (frame := _read_frame(child.stdout)) is not None:
                kind, value = frame
                if kind == _FORMAT_ERROR:
                    feeder.join()
                    if feeder.error is not None:
                        raise feeder.error
                    raise SacctFormatError(value)
                if feeder.error is not None:
                    raise feeder.error
                yield ParsedChunk._make(value)
            feeder.join()
            if feeder.error is not None:
                raise feeder.error
            finished = child.wait() == 0
            if not finished:
                errors.seek(0)
                detail = errors.read()[-2000:].decode(errors="replace").strip()
                raise ParserStopped(
                    f"the sacct reader stopped (exit {child.returncode}): {detail}"
                )
        finally:
            if not finished:
                child.kill()
            child.stdout.close()
            child.wait()
            feeder.join(timeout=5)


def _child(arguments: dict, source: BinaryIO, sink: BinaryIO) -> None:
    """Read frames of lines from ``source``; write frames of results to ``sink``."""
    options = SacctOptions(
        format=arguments["format"],
        delimiter=arguments["delimiter"],
        machine=arguments["machine"],
    )

    def lines() -> Iterator[str]:
        while (block := _read_frame(source)) is not None:
            yield from block

    results = parse_sacct(lines(), ZoneInfo(arguments["zone"]), options)
    try:
        for items in chunks(results, arguments["chunk_size"]):
            _write_frame(sink, (_CHUNK, tuple(_gather(items))))
            sink.flush()
    except SacctFormatError as exc:
        _write_frame(sink, (_FORMAT_ERROR, str(exc)))
    sink.flush()


if __name__ == "__main__":
    # Ctrl-C reaches the whole process group: the importing process stops
    # this one itself, after closing its import as interrupted.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _child(json.loads(sys.argv[1]), sys.stdin.buffer, sys.stdout.buffer)

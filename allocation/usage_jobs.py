"""Run a usage import as a BatchOperation: the one path for the CLI and the API."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from allocation.importing import ImportReport, import_sacct, import_snapshots
from allocation.models import NAME_LENGTH
from allocation.sacct import SacctFormatError, SacctOptions, parse_format
from tracker.batch import operations
from tracker.batch.models import RESULT_FAILED, BatchOperation
from tracker.fields import FieldError

MAX_FORMAT_LENGTH = 2000

SACCT = "sacct"
DISK = "disk"
IMPORT_KINDS = (SACCT, DISK)
OPERATION_TYPES = {SACCT: "allocation.import-sacct", DISK: "allocation.import-disk"}


class ImportRefused(Exception):
    """The import did not run, or the file as a whole was unreadable."""

    def __init__(
        self, status: int, title: str, message: str, field: str | None = None, **extra
    ) -> None:
        super().__init__(message)
        self.status, self.title, self.field, self.extra = status, title, field, extra


@dataclass(frozen=True)
class UsageImportSettings:
    """The ALLOCATION_* settings an import needs."""

    zone: ZoneInfo
    cpu_resource: str
    disk_resource: str
    chunk_size: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> UsageImportSettings:
        """Read the settings from the app's configuration."""
        return cls(
            zone=ZoneInfo(config["ALLOCATION_TIMEZONE"]),
            cpu_resource=config["ALLOCATION_CPU_RESOURCE"],
            disk_resource=config["ALLOCATION_DISK_RESOURCE"],
            chunk_size=config["ALLOCATION_IMPORT_CHUNK_SIZE"],
        )


def sacct_options(
    format_list: str | None, delimiter: str | None, machine: str | None
) -> SacctOptions:
    """Check how a sacct file was printed: its --format list (for --noheader
    output), its --delimiter, and the machine of a file with no Cluster column."""
    names = None
    if format_list:
        if len(format_list) > MAX_FORMAT_LENGTH:
            raise FieldError(
                "format", f"must be at most {MAX_FORMAT_LENGTH} characters"
            )
        try:
            names = parse_format(format_list)
        except SacctFormatError as exc:
            raise FieldError("format", str(exc)) from None
    delimiter = "|" if delimiter is None else delimiter
    if not 0 < len(delimiter) <= 8 or any(c in "\r\n" for c in delimiter):
        raise FieldError("delimiter", "must be 1 to 8 characters, no line break")
    if machine is not None:
        machine = machine.strip()
        if not 0 < len(machine) <= NAME_LENGTH:
            raise FieldError("machine", f"must be 1 to {NAME_LENGTH} characters")
    return SacctOptions(format=names, delimiter=delimiter, machine=machine or None)


def _options_data(options: SacctOptions | None) -> dict[str, Any]:
    if options is None:
        return {}
    return {
        "format": list(options.format) if options.format else None,
        "delimiter": options.delimiter,
        "machine": options.machine,
    }


def run_usage_import(
    session: Session,
    kind: str,
    lines: Iterable[str],
    settings: UsageImportSettings,
    started_by_id: int | None,
    commit: Callable[[], None],
    total_lines: int = 0,
    source: str = "",
    on_chunk: Callable[[ImportReport], None] | None = None,
    sacct_options: SacctOptions | None = None,
) -> tuple[BatchOperation, ImportReport]:
    """Import ``lines`` of ``kind`` under a BatchOperation, committing each chunk.

    ``lines`` is any iterable of text lines, read once (a list, an open file, a
    decoded request stream); ``sacct_options`` says how a sacct file was printed.
    """
    try:
        operation = operations.create_synchronous(
            session,
            OPERATION_TYPES[kind],
            input_data={"source": source, **_options_data(sacct_options)},
            started_by_id=started_by_id,
        )
    except operations.AlreadyActive as exc:
        existing = exc.existing.id if exc.existing else None
        raise ImportRefused(
            409,
            "Already running",
            f"usage import #{existing} is still running",
            batch_operation_id=existing,
        ) from None
    operations.set_total(session, operation.id, total_lines)
    commit()

    def chunk_done(chunk: ImportReport) -> None:
        operations.add_progress(
            session,
            operation.id,
            done=chunk.imported + chunk.already_present,
            failed=chunk.failed,
            skipped=chunk.skipped,
        )
        commit()
        if on_chunk is not None:
            on_chunk(chunk)

    try:
        if kind == SACCT:
            report = import_sacct(
                session,
                lines,
                settings.zone,
                resource_name=settings.cpu_resource,
                chunk_size=settings.chunk_size,
                on_chunk=chunk_done,
                options=sacct_options,
            )
        else:
            report = import_snapshots(
                session,
                lines,
                settings.zone,
                resource_name=settings.disk_resource,
                chunk_size=settings.chunk_size,
                on_chunk=chunk_done,
            )
    except SacctFormatError as exc:
        session.rollback()
        operations.finish(session, operation.id, result=RESULT_FAILED, error=str(exc))
        commit()
        raise ImportRefused(
            400, "Invalid file", str(exc), field="body", batch_operation_id=operation.id
        ) from None
    except BaseException as exc:
        session.rollback()
        stopped = isinstance(exc, KeyboardInterrupt | SystemExit)
        error = "the import was interrupted" if stopped else "the import crashed"
        operations.finish(session, operation.id, result=RESULT_FAILED, error=error)
        commit()
        raise
    if not total_lines:
        operations.set_total(session, operation.id, report.lines)
    operations.finish(session, operation.id, output_data=report.as_dict())
    commit()
    session.refresh(operation)
    return operation, report

"""Run a usage import as a BatchOperation: the one path for the CLI and the API."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from allocation.importing import ImportReport, import_sacct, import_snapshots
from allocation.sacct import SacctFormatError
from tracker.batch import operations
from tracker.batch.models import RESULT_FAILED, BatchOperation

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
) -> tuple[BatchOperation, ImportReport]:
    """Import ``lines`` of ``kind`` under a BatchOperation, committing each chunk."""
    try:
        operation = operations.create_synchronous(
            session,
            OPERATION_TYPES[kind],
            input_data={"source": source},
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

    importer = import_sacct if kind == SACCT else import_snapshots
    resource = settings.cpu_resource if kind == SACCT else settings.disk_resource
    try:
        report = importer(
            session,
            lines,
            settings.zone,
            resource_name=resource,
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
    except Exception:
        session.rollback()
        operations.finish(
            session, operation.id, result=RESULT_FAILED, error="the import crashed"
        )
        commit()
        raise
    if not total_lines:
        operations.set_total(session, operation.id, report.lines)
    operations.finish(session, operation.id, output_data=report.as_dict())
    commit()
    session.refresh(operation)
    return operation, report

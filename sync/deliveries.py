"""Taking delivery of a bundle, pushed or imported from a file, in three steps
that each have their module: verify it once (``verifying``), store its
transactions (``receiving``), apply them (``applying``). Each delivery is
tracked as a BatchOperation. Callers pass ``commit``."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sync.applying import (
    ApplyTotals,
    apply_producer,
    producers_behind,
    producers_with_parked,
    retry_all_parked,
)
from sync.models import ImportedFile
from sync.producers import missing_ranges
from sync.reapplying import releasable_held, release_held
from sync.receiving import Receipt, receive
from sync.verifying import VerifiedBundle, verify_bundle
from sync.wire.bundles import Bundle, BundleError, file_digest, read_bundle_path
from tracker.batch import operations
from tracker.batch.models import RESULT_FAILED, RESULT_PARTIAL, RESULT_SUCCESSFUL

log = logging.getLogger(__name__)

PUSH_OPERATION = "sync-push"
IMPORT_OPERATION = "sync-import"
APPLY_OPERATION = "sync-apply"


@dataclass(frozen=True)
class DeliverySettings:
    allowed_models: Collection[str]
    run_size: int = 1000

    @classmethod
    def from_config(cls, config: Any) -> DeliverySettings:
        return cls(frozenset(config["SYNC_MODELS"]), config["SYNC_APPLY_RUN_SIZE"])


def held_warning(count: int, allowed_models: Collection[str]) -> str:
    """Say loudly why transactions were held and what applies them."""
    listed = ", ".join(sorted(allowed_models)) or "nothing"
    return (
        f"{count} transactions were held, not applied: their model is not on"
        f" SYNC_MODELS (which lists {listed}); they are applied once it is"
        " listed (manage.py sync reapply applies them at once)"
    )


def _reply(
    receipt: Receipt,
    bundle: Bundle,
    totals: ApplyTotals,
    session: Session,
    allowed_models: Collection[str],
) -> dict[str, Any]:
    producer = receipt.producer
    warnings = []
    if receipt.held:
        warnings.append(held_warning(len(receipt.held), allowed_models))
    if receipt.quarantined:
        warnings.append(
            f"{len(receipt.quarantined)} transactions were quarantined: see"
            " their reasons; manage.py sync reapply retries them once fixed"
        )
    field_conflicts = totals.conflicts - totals.refused_updates
    if field_conflicts:
        warnings.append(
            f"{field_conflicts} changes conflict with another producer's change of"
            " the same field (they were applied; see the server's Conflicts page)"
        )
    if totals.refused_updates:
        warnings.append(
            f"{totals.refused_updates} updates were not applied: another producer"
            " deleted the record (see the server's Conflicts page: restore it"
            " with the update, or keep it deleted)"
        )
    return {
        "producer": producer.producer_id,
        "first_sequence": bundle.first_sequence,
        "acknowledged_through": bundle.last_sequence,
        "new": receipt.new,
        "duplicates": receipt.duplicates,
        "quarantined": receipt.quarantined,
        "held": receipt.held,
        "rejected": receipt.rejected,
        "received_through": producer.received_through,
        "missing": missing_ranges(session, producer),
        "applied_through": producer.applied_through,
        "applied": totals.applied + totals.unparked,
        "parked": totals.parked,
        "conflicts": totals.conflicts,
        "warnings": warnings,
    }


def _apply_after_receipt(
    session: Session,
    receipt: Receipt,
    settings: DeliverySettings,
    commit: Callable[[], None],
    operation_id: int,
) -> tuple[ApplyTotals, str]:
    """Apply what arrived; a failure here loses nothing (it stays received and is
    applied later), so it is reported rather than raised."""
    try:
        totals = apply_producer(
            session,
            receipt.producer.id,
            commit,
            settings.run_size,
            known=receipt.known,
        )
        return totals, ""
    except Exception as exc:
        session.rollback()
        log.exception("applying sync operation %s failed", operation_id)
        return ApplyTotals(), f"applying failed, will be retried: {exc}"


def _receive_and_apply(
    session: Session,
    verified: VerifiedBundle,
    settings: DeliverySettings,
    commit: Callable[[], None],
    operation_id: int,
    file_record: dict[str, Any] | None = None,
) -> dict[str, Any]:
    bundle = verified.bundle
    receipt = receive(session, verified, settings.allowed_models, operation_id)
    if file_record is not None:
        session.add(
            ImportedFile(
                producer_id=receipt.producer.id,
                first_sequence=bundle.first_sequence,
                last_sequence=bundle.last_sequence,
                count=len(bundle.transactions),
                operation_id=operation_id,
                summary=(
                    f"{receipt.new} new, {receipt.duplicates} already received,"
                    f" {len(receipt.quarantined)} quarantined,"
                    f" {len(receipt.held)} held,"
                    f" {len(receipt.rejected)} rejected"
                ),
                **file_record,
            )
        )
    operations.add_progress(
        session,
        operation_id,
        done=receipt.new + receipt.duplicates,
        failed=len(receipt.rejected),
    )
    commit()
    totals, error = _apply_after_receipt(
        session, receipt, settings, commit, operation_id
    )
    session.refresh(receipt.producer)
    reply = _reply(receipt, bundle, totals, session, settings.allowed_models)
    reply["operation"] = operation_id
    problems = receipt.rejected or receipt.quarantined or receipt.held or error
    operations.finish(
        session,
        operation_id,
        result=RESULT_PARTIAL if problems else RESULT_SUCCESSFUL,
        output_data=reply,
        error=error,
    )
    commit()
    return reply


def _start(
    session: Session,
    operation_type: str,
    description: dict[str, Any],
    total: int,
    started_by_id: int | None,
) -> int:
    # Every delivery is its own operation: a delivery cut short by a crash must
    # not stop the retry, so the scope is unique.
    scope = f"{description.get('producer', '?')}:{secrets.token_hex(6)}"
    operation = operations.create_synchronous(
        session,
        operation_type,
        scope,
        input_data=description,
        started_by_id=started_by_id,
    )
    operations.set_total(session, operation.id, total)
    return operation.id


def accept_push(
    session: Session,
    bundle: Bundle,
    settings: DeliverySettings,
    commit: Callable[[], None],
) -> dict[str, Any]:
    """Take a pushed bundle. Raises UnknownProducer or BundleError (a bad
    signature) before anything is stored; answers with the acknowledgement."""
    verified = verify_bundle(session, bundle)
    operation_id = _start(
        session,
        PUSH_OPERATION,
        {
            "producer": bundle.producer,
            "first_sequence": bundle.first_sequence,
            "last_sequence": bundle.last_sequence,
        },
        len(bundle.transactions),
        None,
    )
    commit()
    return _receive_and_apply(session, verified, settings, commit, operation_id)


class AlreadyImported(Exception):
    """The very same file was imported before."""

    def __init__(self, record: ImportedFile) -> None:
        super().__init__(
            f"{record.name} was already imported on"
            f" {record.imported:%Y-%m-%d %H:%M} UTC ({record.summary});"
            " nothing to do"
        )
        self.record = record


def import_file(
    session: Session,
    path: str | Path,
    settings: DeliverySettings,
    commit: Callable[[], None],
    max_bytes: int,
    started_by_id: int | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Import one bundle file. A file that cannot be read or verified is recorded
    as a failed import and raised as BundleError (or UnknownProducer)."""
    path = Path(path)
    digest = file_digest(path)
    earlier = session.scalar(select(ImportedFile).where(ImportedFile.sha256 == digest))
    if earlier is not None:
        raise AlreadyImported(earlier)
    label = name or path.name
    operation_id = _start(
        session, IMPORT_OPERATION, {"file": label, "sha256": digest}, 0, started_by_id
    )
    commit()
    try:
        bundle = read_bundle_path(
            path,
            max_bytes,
            check_head=lambda manifest, signature: verify_bundle(
                session, Bundle(manifest, signature, [])
            ),
        )
        verified = verify_bundle(session, bundle)
        operations.set_total(session, operation_id, len(verified.bundle.transactions))
        return _receive_and_apply(
            session,
            verified,
            settings,
            commit,
            operation_id,
            {"sha256": digest, "name": label[:300]},
        )
    except IntegrityError:
        # The same file, imported at the same moment by someone else; their
        # import stored it (the constraint is the file's checksum).
        session.rollback()
        _fail(session, operation_id, f"{label}: imported concurrently; nothing to do")
        commit()
        earlier = session.scalar(
            select(ImportedFile).where(ImportedFile.sha256 == digest)
        )
        if earlier is None:
            raise
        raise AlreadyImported(earlier) from None
    except Exception as exc:
        session.rollback()
        _fail(session, operation_id, f"{label}: {exc}")
        commit()
        raise


def _fail(session: Session, operation_id: int, error: str) -> None:
    operations.finish(session, operation_id, result=RESULT_FAILED, error=error)


def apply_all(
    session: Session,
    settings: DeliverySettings,
    commit: Callable[[], None],
) -> ApplyTotals | None:
    """Apply whatever any producer has waiting and retry parked transactions;
    None when there was nothing to do (run by beat and ``sync apply``)."""
    behind = producers_behind(session)
    parked = producers_with_parked(session)
    releasable = releasable_held(session, settings.allowed_models)
    if not behind and not parked and not releasable:
        return None
    operation_id = _start(
        session, APPLY_OPERATION, {"producers": len(behind)}, len(behind), None
    )
    commit()
    totals = ApplyTotals()
    for producer_id in behind:
        totals.add(
            apply_producer(session, producer_id, commit, settings.run_size, retry=False)
        )
        operations.add_progress(session, operation_id, done=1)
        commit()
    # Held transactions of a model listed since: in line again, and applied.
    released = release_held(session, settings.allowed_models, commit)
    totals.unparked += released.applied
    # Once, after every producer moved on: any of them may bring a parent.
    totals.add(retry_all_parked(session, commit))
    operations.finish(
        session, operation_id, result=RESULT_SUCCESSFUL, output_data=vars(totals)
    )
    commit()
    return totals


__all__ = [
    "AlreadyImported",
    "BundleError",
    "DeliverySettings",
    "accept_push",
    "apply_all",
    "import_file",
]

"""Conflicts: two producers changed one field of a record concurrently.

Applying records them (``sync.applying``); here they are listed, counted per
producer and resolved: keep the applied value, take the other one (which
applies it to the record), or mark the conflict resolved. One query serves the
page and the API.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import Session

from sync.applying import milliseconds
from sync.models import (
    DELETED_CONFLICT,
    DELETION,
    KEEP_APPLIED,
    MARK_RESOLVED,
    OPEN,
    RESOLUTIONS,
    RESOLVED,
    TAKE_OTHER,
    SyncConflict,
    SyncRecord,
)
from tracker.auth.models import User
from tracker.db_types import utcnow

STATES = (OPEN, RESOLVED)


class ConflictRefused(Exception):
    """The resolution cannot be made (already resolved, the record changed)."""


def conflicts_statement(
    model: str | None = None,
    producer_row_id: int | None = None,
    status: str | None = OPEN,
) -> Select:
    """The conflicts, newest first, of a model, with a producer on either side,
    open or resolved (None: both)."""
    statement = select(SyncConflict)
    if model is not None:
        statement = statement.where(SyncConflict.model == model)
    if producer_row_id is not None:
        statement = statement.where(
            or_(
                SyncConflict.applied_producer_id == producer_row_id,
                SyncConflict.other_producer_id == producer_row_id,
            )
        )
    if status is not None:
        statement = statement.where(SyncConflict.status == status)
    return statement.order_by(SyncConflict.detected.desc(), SyncConflict.id.desc())


def conflict_models(session: Session) -> list[str]:
    """The models that have conflicts, for a filter."""
    return list(
        session.scalars(
            select(SyncConflict.model).distinct().order_by(SyncConflict.model)
        )
    )


def open_conflict_total(session: Session) -> int:
    return session.scalar(
        select(func.count(SyncConflict.id)).where(SyncConflict.status == OPEN)
    )


def user_names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(User.id, User.username)).tuples().all())


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _applied_at(conflict: SyncConflict) -> datetime | None:
    if conflict.applied_at is not None or conflict.kind == DELETED_CONFLICT:
        return conflict.applied_at  # a delete's time, unknown on old rows
    return conflict.detected  # a field's later change: applied as detected


def _other_applied(conflict: SyncConflict) -> datetime | None:
    """When the other side was applied: a delete refused an update, applied
    only if the record was restored with it."""
    if conflict.kind != DELETED_CONFLICT:
        return conflict.other_applied
    return conflict.resolved if conflict.resolution == TAKE_OTHER else None


def conflict_item(
    conflict: SyncConflict, producers: dict[int, str], users: dict[int, str]
) -> dict[str, Any]:
    """A conflict as the API gives it."""
    return {
        "id": conflict.id,
        "model": conflict.model,
        "natural_key": json.loads(conflict.natural_key),
        "kind": conflict.kind,
        "field": conflict.field,
        "applied": {
            "value": conflict.applied_value,
            "parent": conflict.applied_parent,
            "producer": producers.get(conflict.applied_producer_id),
            "sequence": conflict.applied_sequence,
            "made": _time(conflict.applied_made),
            "applied": _time(_applied_at(conflict)),
        },
        "other": {
            "value": conflict.other_value,
            "parent": conflict.other_parent,
            "producer": producers.get(conflict.other_producer_id),
            "sequence": conflict.other_sequence,
            "made": _time(conflict.other_made),
            "applied": _time(_other_applied(conflict)),
        },
        "detected": _time(conflict.detected),
        "status": conflict.status,
        "resolution": conflict.resolution,
        "resolved": _time(conflict.resolved),
        "resolved_by": users.get(conflict.resolved_by_id),
    }


def _take_other(
    session: Session, conflict: SyncConflict, now: datetime, user_id: int | None
) -> None:
    """Put the other value back in the record, if the field still holds the
    applied one."""
    record = session.scalar(
        select(SyncRecord)
        .where(
            SyncRecord.model == conflict.model,
            SyncRecord.natural_key == conflict.natural_key,
        )
        .with_for_update()
    )
    if conflict.kind == DELETED_CONFLICT:
        _restore(session, record, conflict, now, user_id)
        return
    if record is None or record.deleted is not None:
        raise ConflictRefused(
            "the record is no longer there (deleted or renamed since): keep the"
            " applied value or mark the conflict resolved"
        )
    changes = dict(record.changes or {})
    stamp = changes.get(conflict.field)
    if stamp is None or stamp[:2] != [
        conflict.applied_producer_id,
        conflict.applied_sequence,
    ]:
        raise ConflictRefused(
            f"{conflict.field} was changed again since the conflict: the record"
            " holds a later value; keep it or mark the conflict resolved"
        )
    fields = dict(record.fields)
    fields[conflict.field] = conflict.other_value
    parents = dict(record.parents or {})
    if conflict.other_parent is not None:
        parents[conflict.field] = conflict.other_parent
    else:
        parents.pop(conflict.field, None)
    changes[conflict.field] = [
        conflict.other_producer_id,
        conflict.other_sequence,
        milliseconds(conflict.other_made),
        milliseconds(now),
    ]
    record.fields, record.parents, record.changes = fields, parents, changes
    # The record's last change is now the other producer's.
    record.producer_id = conflict.other_producer_id
    record.sequence = conflict.other_sequence
    record.updated = now


def _restore(
    session: Session,
    record: SyncRecord | None,
    conflict: SyncConflict,
    now: datetime,
    user_id: int | None,
) -> None:
    """Bring a deleted record back with the update its delete had refused, and
    the same producer's later updates it refused (in their order), if it is
    still deleted by that delete."""
    stamp = (record.changes or {}).get(DELETION) if record is not None else None
    if (
        record is None
        or record.deleted is None
        or stamp is None
        or stamp[:2] != [conflict.applied_producer_id, conflict.applied_sequence]
    ):
        raise ConflictRefused(
            "the record changed since the conflict (brought back or deleted"
            " again): keep it as it is or mark the conflict resolved"
        )
    changes = {
        name: value for name, value in record.changes.items() if name != DELETION
    }
    record.changes = changes
    for refused in [conflict, *_later_refused(session, conflict)]:
        _apply_refused(record, refused, now)
        if refused is not conflict:
            # Restored with the record: that producer's later update is in it.
            _mark_resolved(refused, TAKE_OTHER, now, user_id)
    record.deleted = None
    record.updated = now


def _later_refused(session: Session, conflict: SyncConflict) -> list[SyncConflict]:
    """The same producer's later updates of the record its delete refused, in
    their order: restoring the record brings them back too."""
    return list(
        session.scalars(
            select(SyncConflict)
            .where(
                SyncConflict.kind == DELETED_CONFLICT,
                SyncConflict.status == OPEN,
                SyncConflict.model == conflict.model,
                SyncConflict.natural_key == conflict.natural_key,
                SyncConflict.applied_producer_id == conflict.applied_producer_id,
                SyncConflict.applied_sequence == conflict.applied_sequence,
                SyncConflict.other_producer_id == conflict.other_producer_id,
                SyncConflict.other_sequence > conflict.other_sequence,
            )
            .order_by(SyncConflict.other_sequence)
            .with_for_update()
        )
    )


def _apply_refused(record: SyncRecord, conflict: SyncConflict, now: datetime) -> None:
    """Merge the update a delete refused into the restored record."""
    update = conflict.other_value or {}
    stamp = [
        conflict.other_producer_id,
        conflict.other_sequence,
        milliseconds(conflict.other_made),
        milliseconds(now),
    ]
    changes = dict(record.changes or {})
    changes.update(dict.fromkeys(update, stamp))
    parents = {
        name: parent
        for name, parent in (record.parents or {}).items()
        if name not in update
    }
    parents.update(conflict.other_parent or {})
    record.fields = {**(record.fields or {}), **update}
    record.parents, record.changes = parents, changes
    record.version += 1
    record.producer_id = conflict.other_producer_id
    record.sequence = conflict.other_sequence


def _mark_resolved(
    conflict: SyncConflict, action: str, now: datetime, user_id: int | None
) -> None:
    conflict.status = RESOLVED
    conflict.resolution = action
    conflict.resolved = now
    conflict.resolved_by_id = user_id


def resolve_conflict(
    session: Session, conflict_id: int, action: str, user_id: int | None
) -> SyncConflict | None:
    """Resolve a conflict (None when there is no such conflict); raise
    ConflictRefused when it cannot be. The caller commits."""
    if action not in RESOLUTIONS:
        raise ValueError(f"action: one of {', '.join(RESOLUTIONS)}")
    # A write first: the conflict's row lock (SQLite's write lock), so that two
    # resolutions of one conflict queue and the second sees the first.
    locked = session.execute(
        update(SyncConflict)
        .where(SyncConflict.id == conflict_id)
        .values(status=SyncConflict.status)
    )
    if locked.rowcount != 1:
        return None
    conflict = session.get(SyncConflict, conflict_id, populate_existing=True)
    if conflict.status != OPEN:
        raise ConflictRefused(
            f"conflict {conflict_id} is already resolved ({conflict.resolution})"
        )
    now = utcnow()
    if action == TAKE_OTHER:
        _take_other(session, conflict, now, user_id)
    _mark_resolved(conflict, action, now, user_id)
    return conflict


__all__ = [
    "KEEP_APPLIED",
    "MARK_RESOLVED",
    "TAKE_OTHER",
    "ConflictRefused",
    "conflict_item",
    "conflicts_statement",
    "resolve_conflict",
]

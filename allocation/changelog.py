"""The change log: every create, update and delete of an allocation record.

Flush hooks on the application's own session, installed by the domain's
``init_app``, write a :class:`Change` row in the same transaction as the change
itself, so the log cannot miss a committed edit nor keep a rolled-back one. Who
made the change comes from :func:`set_actor` on the session.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import event, insert, inspect
from sqlalchemy.orm import Session, scoped_session

from allocation.models import AUDITED_MODELS, Change
from tracker.db_types import utcnow

ACTOR_KEY = "allocation.actor"
PENDING_KEY = "allocation.pending_changes"
CREATED_KEY = "allocation.created"
CHANGES = Change.__table__


def set_actor(session: Session, user_id: int | None, name: str) -> None:
    """Name who the session's next changes are made by (a user, or a command)."""
    session.info[ACTOR_KEY] = (user_id, name)


def _plain(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def _column_values(instance) -> dict[str, Any]:
    state = inspect(instance)
    return {
        attribute.key: _plain(getattr(instance, attribute.key))
        for attribute in state.mapper.column_attrs
    }


def _changed_columns(instance) -> dict[str, list[Any]]:
    state = inspect(instance)
    changes = {}
    for attribute in state.mapper.column_attrs:
        history = state.attrs[attribute.key].history
        if history.has_changes():
            old = history.deleted[0] if history.deleted else None
            new = history.added[0] if history.added else None
            if old != new:
                changes[attribute.key] = [_plain(old), _plain(new)]
    return changes


def _entry(session: Session, instance, action: str, changes: dict) -> dict:
    user_id, actor = session.info.get(ACTOR_KEY, (None, "system"))
    return {
        "changed": utcnow(),
        "user_id": user_id,
        "actor": actor,
        "model": type(instance).__name__,
        "object_id": instance.id,
        "action": action,
        "changes": changes,
        "summary": "",
    }


def record_changes(session: Session, _flush_context, _instances) -> None:
    """Note the audited objects about to be flushed (a before_flush hook)."""
    # Replaced at every flush, so a flush that failed leaves nothing behind.
    pending = session.info[PENDING_KEY] = []
    for instance in session.dirty:
        if isinstance(instance, AUDITED_MODELS) and session.is_modified(instance):
            changes = _changed_columns(instance)
            if changes:
                pending.append(_entry(session, instance, "update", changes))
    for instance in session.deleted:
        if isinstance(instance, AUDITED_MODELS):
            pending.append(
                _entry(session, instance, "delete", _column_values(instance))
            )
    # New rows have no id before the flush: they are logged after it.
    session.info[CREATED_KEY] = [
        o for o in session.new if isinstance(o, AUDITED_MODELS)
    ]


def write_changes(session: Session, _flush_context) -> None:
    """Write the noted changes in the flush's transaction (an after_flush hook)."""
    entries = session.info.pop(PENDING_KEY, [])
    entries += [
        _entry(session, instance, "create", _column_values(instance))
        for instance in session.info.pop(CREATED_KEY, [])
    ]
    if entries:
        session.connection().execute(insert(CHANGES), entries)


def install(session: scoped_session) -> None:
    """Hook the change log into the application's session (``db.session``), once."""
    if not event.contains(session, "before_flush", record_changes):
        event.listen(session, "before_flush", record_changes)
        event.listen(session, "after_flush", write_changes)

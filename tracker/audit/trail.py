"""One audit trail of every state-changing action, in every domain.

Three ways in, one table (:class:`~tracker.audit.models.AuditEvent`):

- **Tracked models** (:func:`track`): flush hooks on the application's session
  note every create, update and delete of a tracked record with the fields it
  changed, and write them in the same transaction as the change itself: the
  trail can neither miss a committed edit nor keep a rolled-back one.
- **Explicit events** (:func:`record`): for actions that are not one record's
  edit (a crawl started, an override approved, a password reset).
- **The request net** (:mod:`tracker.audit`): a signed-in write that left no
  event of its own is recorded by its route, so no route goes unrecorded.
- **The command net** (:func:`record_unaudited_command`): likewise a
  ``manage.py`` command that wrote and recorded nothing of its own.

Who acted is the signed-in user of the request, or what :func:`set_actor` names
(a command); otherwise "system".
"""

from __future__ import annotations

import datetime as dt
import enum
import getpass
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app, g, has_app_context, has_request_context, request
from sqlalchemy import event, insert, inspect
from sqlalchemy.orm import Session, scoped_session

from tracker.audit.models import AuditEvent
from tracker.db_types import utcnow

ACTOR_KEY = "audit.actor"
# What the running command did so far: {"wrote", "audited"}.
COMMAND_KEY = "audit.command"
PENDING_KEY = "audit.pending"
CREATED_KEY = "audit.created"
EVENTS = AuditEvent.__table__
HIDDEN = "(hidden)"
# Column names whose values never enter the trail, only the fact they changed.
SECRET_WORDS = ("password", "secret", "token", "hash", "key", "credential")
SUMMARY_MAX = 500


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    name: str
    via: str


SYSTEM = Actor(None, "system", "system")


@dataclass(frozen=True)
class Tracked:
    domain: str
    # The columns whose changes are recorded (None: all).
    columns: frozenset[str] | None
    # Which actions are recorded.
    actions: frozenset[str]
    # Only changes made by a person or a command, not by background jobs.
    by_people_only: bool = False


_TRACKED: dict[type, Tracked] = {}


def track(
    model: type,
    domain: str,
    columns: tuple[str, ...] | None = None,
    actions: tuple[str, ...] = ("create", "update", "delete"),
    by_people_only: bool = False,
) -> None:
    """Record every create, update and delete of ``model`` in ``domain``'s
    trail (only changes of ``columns`` when given; only ``actions``; only
    those of people and commands if ``by_people_only``)."""
    _TRACKED[model] = Tracked(
        domain,
        frozenset(columns) if columns else None,
        frozenset(actions),
        by_people_only,
    )


def set_actor(session: Session, user_id: int | None, name: str, via: str) -> None:
    """Name who the session's next changes are made by."""
    session.info[ACTOR_KEY] = Actor(user_id, name, via)


def command_actor() -> Actor:
    """Who runs a command: manage.py and the OS user."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = ""
    return Actor(None, f"manage.py ({who})" if who else "manage.py", "cli")


def act_for_commands(app) -> None:
    """Changes made outside requests in ``app`` are made by a command."""
    app.extensions[ACTOR_KEY] = command_actor()


def record_unaudited_command(app, words: list[str], domain: str) -> None:
    """The command net: a command that wrote to the database and recorded
    nothing of its own is recorded by its words (options' values left out:
    they may be secrets), in a transaction of its own."""
    did = app.extensions.pop(COMMAND_KEY, set())
    if "wrote" not in did or "audited" in did:
        return
    from tracker.extensions import db

    summary = "manage.py " + " ".join(words)
    row = event_row(app.extensions[ACTOR_KEY], domain, "command", "", "", summary)
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(EVENTS.insert(), [row])


def current_actor(session: Session) -> Actor:
    explicit = session.info.get(ACTOR_KEY)
    if explicit is not None:
        return explicit
    if has_request_context():
        from tracker.errors import wants_json

        via = "api" if wants_json() else "page"
        # The user Flask-Login already loaded: never a query inside a flush.
        user = g.get("_login_user")
        if user is not None and user.is_authenticated:
            return Actor(user.id, user.username, via)
        return Actor(None, "anonymous", via)
    if has_app_context():
        return current_app.extensions.get(ACTOR_KEY, SYSTEM)
    return SYSTEM


def _remote_addr() -> str:
    return (request.remote_addr or "")[:64] if has_request_context() else ""


def _plain(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return HIDDEN
    return value


def _secret(column: str) -> bool:
    return any(word in column for word in SECRET_WORDS)


def given_values(fields: Any, most: int = 20, longest: int = 200) -> dict[str, Any]:
    """What a request asked for, as the request net keeps it: its form fields
    or JSON keys, secrets hidden, bounded in count and length."""
    if not isinstance(fields, Mapping):
        return {}
    given: dict[str, Any] = {}
    for key in list(fields)[: most + 1]:
        name = str(key)[:64]
        if name == "csrf_token" or len(given) == most:
            continue
        value = fields[key]
        if not isinstance(value, str | int | float | bool | type(None)):
            value = json.dumps(value, default=str)
        if isinstance(value, str):
            value = value[:longest]
        given[name] = _shown(name.lower(), value)
    return given


def _shown(column: str, value: Any) -> Any:
    # A flag such as must_change_password tells nothing secret.
    if _secret(column) and value is not None and not isinstance(value, bool):
        return HIDDEN
    return _plain(value)


def _columns(instance, tracked: Tracked) -> list[str]:
    keys = [attribute.key for attribute in inspect(instance).mapper.column_attrs]
    if tracked.columns is None:
        return keys
    return [key for key in keys if key in tracked.columns]


def _column_values(instance, tracked: Tracked) -> dict[str, Any]:
    return {
        key: _shown(key, getattr(instance, key)) for key in _columns(instance, tracked)
    }


def _changed_columns(instance, tracked: Tracked) -> dict[str, list[Any]]:
    state = inspect(instance)
    changes = {}
    for key in _columns(instance, tracked):
        history = state.attrs[key].history
        if history.has_changes():
            old = history.deleted[0] if history.deleted else None
            new = history.added[0] if history.added else None
            if old != new:
                changes[key] = [_shown(key, old), _shown(key, new)]
    return changes


def _name_of(instance) -> str:
    for attribute in (
        "name",
        "username",
        "producer_id",
        "record_kind",
        "operation_type",
        "url",
    ):
        value = getattr(instance, attribute, None)
        if isinstance(value, str) and value:
            return value
    return ""


def event_row(
    actor: Actor,
    domain: str,
    action: str,
    target_type: str = "",
    target_id: Any = "",
    summary: str = "",
    changes: dict | None = None,
) -> dict[str, Any]:
    """The values of one audit event."""
    return {
        "at": utcnow(),
        "user_id": actor.user_id,
        "actor": actor.name[:100],
        "via": actor.via,
        "domain": domain,
        "action": action[:64],
        "target_type": target_type[:40],
        "target_id": "" if target_id is None else str(target_id)[:100],
        "summary": summary[:SUMMARY_MAX],
        "changes": changes or {},
        "remote_addr": _remote_addr(),
    }


def _key_of(instance) -> str:
    # After a flush, before the identity map knows it: read the key's columns.
    key = inspect(instance).mapper.primary_key_from_instance(instance)
    return "/".join("" if part is None else str(part) for part in key)


def _entry(session: Session, instance, tracked: Tracked, action: str, changes):
    return event_row(
        current_actor(session),
        tracked.domain,
        action,
        type(instance).__name__,
        _key_of(instance),
        _name_of(instance),
        changes,
    )


def _command_did(what: str) -> None:
    if has_app_context() and ACTOR_KEY in current_app.extensions:
        current_app.extensions.setdefault(COMMAND_KEY, set()).add(what)


def _mark_audited() -> None:
    if has_request_context():
        g.audited = True
    else:
        _command_did("audited")


def record(
    session: Session,
    domain: str,
    action: str,
    target_type: str = "",
    target_id: Any = "",
    summary: str = "",
    changes: dict | None = None,
) -> None:
    """Add one event to ``session``'s transaction: committed with the action."""
    session.execute(
        insert(EVENTS),
        [
            event_row(
                current_actor(session),
                domain,
                action,
                target_type,
                target_id,
                summary,
                changes,
            )
        ],
    )
    _mark_audited()


def _tracked(instance, session: Session) -> Tracked | None:
    tracked = _TRACKED.get(type(instance))
    if tracked and tracked.by_people_only and current_actor(session) == SYSTEM:
        return None
    return tracked


def _mark_written() -> None:
    if has_request_context():
        g.wrote = True
    else:
        _command_did("wrote")


def note_writes(execute_state) -> None:
    """Note that the request wrote something (a do_orm_execute hook)."""
    if execute_state.is_insert or execute_state.is_update or execute_state.is_delete:
        _mark_written()


def note_changes(session: Session, _flush_context, _instances) -> None:
    """Note the tracked records about to be flushed (a before_flush hook)."""
    if session.new or session.deleted or any(map(session.is_modified, session.dirty)):
        _mark_written()
    if not _TRACKED:
        return
    # Replaced at every flush, so a flush that failed leaves nothing behind.
    pending = session.info[PENDING_KEY] = []
    for instance in session.dirty:
        tracked = _tracked(instance, session)
        if tracked and "update" in tracked.actions and session.is_modified(instance):
            changes = _changed_columns(instance, tracked)
            if changes:
                pending.append(_entry(session, instance, tracked, "update", changes))
    for instance in session.deleted:
        tracked = _tracked(instance, session)
        if tracked and "delete" in tracked.actions:
            values = _column_values(instance, tracked)
            pending.append(_entry(session, instance, tracked, "delete", values))
    # New rows have no id before the flush: they are recorded after it.
    session.info[CREATED_KEY] = [
        o
        for o in session.new
        if (tracked := _tracked(o, session)) is not None and "create" in tracked.actions
    ]


def write_changes(session: Session, _flush_context) -> None:
    """Write the noted changes in the flush's transaction (an after_flush hook)."""
    entries = session.info.pop(PENDING_KEY, [])
    for instance in session.info.pop(CREATED_KEY, []):
        tracked = _TRACKED[type(instance)]
        values = _column_values(instance, tracked)
        entries.append(_entry(session, instance, tracked, "create", values))
    if entries:
        session.connection().execute(insert(EVENTS), entries)
        _mark_audited()


def install(session: scoped_session) -> None:
    """Hook the trail into the application's session (``db.session``), once."""
    if not event.contains(session, "before_flush", note_changes):
        event.listen(session, "before_flush", note_changes)
        event.listen(session, "after_flush", write_changes)
        event.listen(session, "do_orm_execute", note_writes)

"""Applying received transactions to the server's records, the last step of a
delivery (and of the periodic apply), in order per producer.

Each pass takes the next run of a producer's received transactions, applies it
by natural key and advances the producer's cursor in the same database
transaction, so a crash at any point leaves every transaction applied once or
not at all. A transaction whose parent record has not arrived (say, from
another device) is parked, and so are later ones of the same record; the rest
go on, and parked ones are retried after every pass.

Each record remembers which change set each of its fields last. When a change
sets a field that another producer set last, to another value, and the two are
concurrent (each was made, by its device's clock, before the other was applied
here: neither device could have seen the other's value), the change is applied
as any other and a conflict keeps both sides (``SyncConflict``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    String,
    Table,
    bindparam,
    cast,
    delete,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from sync.models import (
    APPLIED,
    DELETED_CONFLICT,
    DELETION,
    FIELD_CONFLICT,
    HELD,
    OPEN,
    PARKED,
    QUARANTINED,
    RECEIVED,
    IncomingTransaction,
    SyncConflict,
    SyncProducer,
    SyncRecord,
)
from sync.producers import lock_producer
from sync.storing import (
    JSON_COLUMNS,
    insert_rows,
    is_postgresql,
    update_records_postgresql,
)
from sync.wire.payloads import canonical_json
from tracker.db_types import UTCDateTime, utcnow

Key = tuple[str, str]  # (model, canonical JSON natural key)
KEYS_PER_QUERY = 400
# Two runs of different producers that write the same record at once: the
# later waits for the earlier's row lock, or its insert of the same new key
# fails; the run is then tried again, and sees the other's records.
RUN_ATTEMPTS = 5
RETRIED_STATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock


@dataclass
class Entry:
    """A record as it stands while a run is applied: ``row_id`` is its stored
    row."""

    row_id: int | None
    version: int
    created: datetime
    fields: dict[str, Any] | None = None
    parents: dict[str, Any] | None = None
    schema_version: int = 1
    producer_id: int | None = None
    sequence: int = 0
    # field -> [producer row id, sequence, made ms, applied ms] of its last change
    changes: dict[str, list[int]] | None = None
    # When its delete was applied: a tombstone, as good as missing to a change.
    deleted: datetime | None = None


# A record a run only reads (a parent): it is there, and the run leaves it be.
READ_ONLY = Entry(None, 0, datetime.min)


class Received(NamedTuple):
    """A received transaction as applying reads it; ``payload`` is its text as
    stored, or already parsed when it was just received."""

    sequence: int
    model: str
    natural_key: str
    action: str
    schema_version: int
    payload: Any
    created: datetime
    status: str


@dataclass
class ApplyTotals:
    applied: int = 0
    parked: int = 0
    quarantined: int = 0
    unparked: int = 0
    held: int = 0
    conflicts: int = 0
    # Of the conflicts, updates not applied: another producer deleted the record.
    refused_updates: int = 0

    def add(self, other: ApplyTotals) -> None:
        self.applied += other.applied
        self.parked += other.parked
        self.quarantined += other.quarantined
        self.unparked += other.unparked
        self.held += other.held
        self.conflicts += other.conflicts
        self.refused_updates += other.refused_updates


@functools.cache
def _stored_records(table: Table, dialect: str, lock: bool):
    """The records of the model ``:model`` with one of ``:keys``, as a statement
    built once: whole and row-locked on
    PostgreSQL when ``lock`` is set (to be written; SQLite has one writer at a
    time already), else only their ids (parents, whose existence is all a run
    needs).

    On PostgreSQL, one probe of the unique index per key (a lateral subquery
    with LIMIT 1 is not flattened into a join), a plan that needs no
    statistics: ``natural_key IN (...)`` on a table filled since it was last
    analysed (the first big import into a new server) is planned as a scan of
    every record of the model against every key, and once psycopg prepares the
    statement that plan is kept, so each run costs more as the table grows.
    """
    columns: tuple = (table.c.id, table.c.natural_key)
    if lock:
        columns += (
            table.c.version,
            table.c.created,
            table.c.fields,
            table.c.parents,
            table.c.schema_version,
            table.c.changes,
            table.c.deleted,
        )
    model = bindparam("model", type_=String)
    # A parent deleted is a parent missing.
    live = () if lock else (table.c.deleted.is_(None),)
    if dialect != "postgresql":
        return select(*columns).where(
            table.c.model == model,
            table.c.natural_key.in_(bindparam("keys", expanding=True)),
            *live,
        )
    # The keys as one JSON text: an array parameter escapes each key apart.
    wanted = (
        func.json_array_elements_text(cast(bindparam("keys", type_=String), JSON))
        .table_valued("value")
        .render_derived(name="wanted")
    )
    probe = (
        select(*columns)
        .where(table.c.model == model, table.c.natural_key == wanted.c.value, *live)
        .limit(1)
    )
    if lock:
        probe = probe.with_for_update()
    probe = probe.lateral("probe")
    return select(probe).select_from(wanted).join(probe, true())


def _reference_key(reference: dict[str, Any]) -> Key:
    return reference["model"], canonical_json(reference["natural_key"])


class RecordState:
    """The records a run touches: loaded in a few queries, changed in memory,
    written back as one batch of deletes, updates and inserts."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.original: dict[Key, Entry | None] = {}
        self.current: dict[Key, Entry | None] = {}

    def load(self, written: Iterable[Key], read: Iterable[Key] = ()) -> None:
        """Load the records the run may write (locked) and those it only
        reads (its changes' parents)."""
        locked = {key for key in written if key not in self.original}
        unlocked = {key for key in read if key not in self.original} - locked
        for keys, lock in ((locked, True), (unlocked, False)):
            self._load(sorted(keys), lock)

    def _load(self, wanted: list[Key], lock: bool) -> None:
        for key in wanted:
            self.original[key] = None
        by_model: dict[str, list[str]] = {}
        for model, natural_key in wanted:
            by_model.setdefault(model, []).append(natural_key)
        table = SyncRecord.__table__
        dialect = self.session.get_bind().dialect.name
        for model, natural_keys in by_model.items():
            for start in range(0, len(natural_keys), KEYS_PER_QUERY):
                part = natural_keys[start : start + KEYS_PER_QUERY]
                keys = json.dumps(part) if dialect == "postgresql" else part
                for row in self.session.execute(
                    _stored_records(table, dialect, lock),
                    {"model": model, "keys": keys},
                ).all():
                    self.original[(model, row.natural_key)] = (
                        Entry(
                            row.id,
                            row.version,
                            row.created,
                            row.fields,
                            row.parents or {},
                            row.schema_version,
                            changes=row.changes,
                            deleted=row.deleted,
                        )
                        if lock
                        else READ_ONLY
                    )
        for key in wanted:
            self.current[key] = self.original[key]

    def get(self, key: Key) -> Entry | None:
        """The record as it stands, None when it is missing or deleted."""
        entry = self.current[key]
        return None if entry is None or entry.deleted else entry

    def tombstone(self, key: Key) -> Entry | None:
        """The record if it is deleted (kept as a tombstone)."""
        entry = self.current[key]
        return entry if entry is not None and entry.deleted else None

    def set(self, key: Key, entry: Entry | None) -> None:
        self.current[key] = entry

    def write(self, now: datetime) -> None:
        table = SyncRecord.__table__
        deletes, updates, inserts = [], [], []
        for key, entry in self.current.items():
            before = self.original[key]
            if entry is before:
                continue
            if entry is None:
                deletes.append(before.row_id)
                continue
            values = {
                "fields": entry.fields,
                "parents": entry.parents,
                "schema_version": entry.schema_version,
                "version": entry.version,
                "producer_id": entry.producer_id,
                "sequence": entry.sequence,
                "changes": entry.changes,
                "updated": now,
                "deleted": entry.deleted,
            }
            if before is None:
                inserts.append(
                    {
                        "model": key[0],
                        "natural_key": key[1],
                        "created": entry.created,
                        **values,
                    }
                )
            else:
                updates.append({"row_id": before.row_id, **values})
        # Deletes first, so a record renamed in this run frees its old key.
        for start in range(0, len(deletes), KEYS_PER_QUERY):
            self.session.execute(
                delete(table).where(
                    table.c.id.in_(deletes[start : start + KEYS_PER_QUERY])
                )
            )
        if updates and is_postgresql(self.session):
            update_records_postgresql(self.session, updates)
        elif updates:
            self.session.connection().execute(
                update(table)
                .where(table.c.id == bindparam("row_id"))
                .values(
                    {name: bindparam(name) for name in updates[0] if name != "row_id"}
                ),
                updates,
            )
        if inserts:
            insert_rows(self.session, table, inserts, JSON_COLUMNS)
        self.original = dict(self.current)


@dataclass
class Change:
    """One incoming transaction, read for applying."""

    sequence: int
    model: str
    key: Key
    action: str
    schema_version: int
    fields: dict[str, Any]
    parents: dict[str, Any]
    previous: Key | None
    created: datetime
    parent_keys: list[tuple[str, dict[str, Any], Key]]
    # Device-local columns (a primary key): never a conflict between devices.
    local_fields: frozenset[str] = frozenset()

    @classmethod
    def read(cls, row: Received) -> Change:
        payload = row.payload
        if isinstance(payload, str):
            payload = json.loads(payload)
        previous = payload.get("previous_natural_key")
        parents = payload.get("parents", {})
        local = frozenset(payload.get("local_fields", ()))
        return cls(
            row.sequence,
            row.model,
            (row.model, row.natural_key),
            row.action,
            row.schema_version,
            # A device's local primary key is no data of the record here: each
            # device numbers its rows its own way.
            {
                name: value
                for name, value in payload["fields"].items()
                if name not in local
            },
            parents,
            (row.model, canonical_json(previous)) if previous else None,
            row.created,
            [
                (name, parent, _reference_key(parent))
                for name, parent in parents.items()
            ],
            local,
        )

    def written_keys(self) -> list[Key]:
        return [self.key, self.previous] if self.previous else [self.key]

    def parent_records(self) -> list[Key]:
        return [key for _, _, key in self.parent_keys]


def milliseconds(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def moment_of(milliseconds: int) -> datetime:
    return datetime.fromtimestamp(milliseconds / 1000, UTC)


@dataclass
class Run:
    """What one pass applies with: its producer, its time, what it found."""

    producer_id: int
    blocked: dict[Key, int]
    now: datetime
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    now_ms: int = 0

    def __post_init__(self) -> None:
        self.now_ms = milliseconds(self.now)


def _same(before: Any, after: Any) -> bool:
    # JSON values: 1 and true are equal in Python, not in JSON.
    return before == after and type(before) is type(after)


def _note_conflicts(
    run: Run, existing: Entry, change: Change, stamp: list[int]
) -> dict[str, list[int]]:
    """The record's field stamps after ``change``; each field it sets that
    another producer set last, concurrently and to another value, is noted as a
    conflict."""
    changes = dict(existing.changes or {})
    fields, parents = existing.fields or {}, existing.parents or {}
    for name, value in change.fields.items():
        last = changes.get(name)
        changes[name] = stamp
        if (
            last is None
            or last[0] == run.producer_id
            or name in change.local_fields
            # Concurrent: each made before the other was applied here.
            or not (stamp[2] < last[3] and last[2] < stamp[3])
        ):
            continue
        before, after = parents.get(name), change.parents.get(name)
        if before is not None or after is not None:
            # A parent's local id differs between devices; its natural key not.
            if before == after:
                continue
        elif _same(fields.get(name), value):
            continue
        run.conflicts.append(
            {
                "model": change.model,
                "natural_key": change.key[1],
                "field": name,
                "kind": FIELD_CONFLICT,
                "applied_value": value,
                "applied_parent": after,
                "applied_producer_id": run.producer_id,
                "applied_sequence": change.sequence,
                "applied_made": change.created,
                "applied_at": run.now,
                "other_value": fields.get(name),
                "other_parent": before,
                "other_producer_id": last[0],
                "other_sequence": last[1],
                "other_made": moment_of(last[2]),
                "other_applied": moment_of(last[3]),
                "detected": run.now,
                "status": OPEN,
            }
        )
    return changes


def _apply_change(state: RecordState, change: Change, run: Run) -> str | None:
    """Apply one change to ``state``; return why it must wait, or None."""
    blocked = run.blocked
    for key in (change.key, change.previous):
        if key in blocked:
            return f"waits for parked transaction {blocked[key]} of the same record"
    if change.action != "delete":
        for name, parent, key in change.parent_keys:
            if state.get(key) is None:
                return (
                    f"waits for its parent {parent['model']}"
                    f" {canonical_json(parent['natural_key'])} ({name})"
                )
    existing = state.get(change.key)
    stamp = [run.producer_id, change.sequence, milliseconds(change.created), run.now_ms]
    if change.action == "delete":
        if existing is not None:
            state.set(change.key, _tombstone(existing, run, change, stamp))
        return None
    if change.previous and change.previous != change.key:
        moved = state.get(change.previous)
        if moved is not None:
            state.set(change.previous, _tombstone(moved, run, change, stamp))
            existing = moved
    if existing is None and change.action == "update":
        deleted = state.tombstone(change.previous or change.key)
        if deleted is not None:
            run.conflicts.append(_deleted_conflict(deleted, change, run))
            return None
    if existing is None:
        # A new record (of a key perhaps deleted before: its tombstone's row).
        state.set(
            change.key,
            Entry(
                None,
                1,
                change.created,
                change.fields,
                change.parents,
                change.schema_version,
                run.producer_id,
                change.sequence,
                dict.fromkeys(change.fields, stamp),
            ),
        )
        return None
    fields, parents = merged(existing, change, run.producer_id)
    state.set(
        change.key,
        Entry(
            None,
            existing.version + 1,
            existing.created,
            fields,
            parents,
            max(existing.schema_version, change.schema_version),
            run.producer_id,
            change.sequence,
            _note_conflicts(run, existing, change, stamp),
        ),
    )
    return None


def _tombstone(existing: Entry, run: Run, change: Change, stamp: list[int]) -> Entry:
    """The record deleted by ``change`` (or renamed away from its key): its
    last fields stay, and the delete is stamped."""
    return Entry(
        None,
        existing.version + 1,
        existing.created,
        existing.fields,
        existing.parents,
        existing.schema_version,
        run.producer_id,
        change.sequence,
        {**(existing.changes or {}), DELETION: stamp},
        deleted=run.now,
    )


def _deleted_conflict(deleted: Entry, change: Change, run: Run) -> dict[str, Any]:
    """An update of a record another device deleted: the record stays deleted
    (the applied side) and the update is kept (the other side) to be restored."""
    stamp = (deleted.changes or {}).get(DELETION) or [
        deleted.producer_id,
        deleted.sequence,
        milliseconds(deleted.deleted),
        milliseconds(deleted.deleted),
    ]
    return {
        "model": change.model,
        "natural_key": change.key[1],
        "field": "",
        "kind": DELETED_CONFLICT,
        "applied_value": None,
        "applied_parent": None,
        "applied_producer_id": stamp[0],
        "applied_sequence": stamp[1],
        "applied_made": moment_of(stamp[2]),
        "applied_at": deleted.deleted,
        "other_value": change.fields,
        "other_parent": change.parents or None,
        "other_producer_id": run.producer_id,
        "other_sequence": change.sequence,
        "other_made": change.created,
        "other_applied": run.now,
        "detected": run.now,
        "status": OPEN,
    }


def merged(
    existing: Entry, change: Change, producer_id: int | None = None
) -> tuple[dict, dict]:
    """The record's fields and parents after ``change``, field by field: a field
    the change does not carry (a device on an older model does not know it)
    keeps its value; a field it carries, even as null, takes the new value, with
    its parent. A parent of a field it does not carry names anew the record the
    field points to (renamed since, say) when this producer set the field last;
    one another producer set stays as that producer set it."""
    fields = {**(existing.fields or {}), **change.fields}
    parents = {
        name: parent
        for name, parent in (existing.parents or {}).items()
        if name not in change.fields
    }
    stamps = existing.changes or {}
    for name, parent in change.parents.items():
        last = stamps.get(name)
        if name in change.fields or last is None or last[0] == producer_id:
            parents[name] = parent
    return fields, parents


def _apply_run(
    session: Session, rows: list[Received], producer_id: int, blocked: dict[Key, int]
) -> tuple[list[int], list[dict], ApplyTotals]:
    """Apply ``rows`` in order (those waiting: received or parked); return the
    sequences applied and the status updates of those parked."""
    totals = ApplyTotals()
    changes = [Change.read(row) for row in rows if row.status in (RECEIVED, PARKED)]
    totals.held = sum(row.status == HELD for row in rows)
    totals.quarantined = sum(row.status == QUARANTINED for row in rows)
    state = RecordState(session)
    state.load(
        (key for change in changes for key in change.written_keys()),
        (key for change in changes for key in change.parent_records()),
    )
    run = Run(producer_id, blocked, utcnow())
    applied, parked = [], []
    for change in changes:
        reason = _apply_change(state, change, run)
        if reason is None:
            applied.append(change.sequence)
        else:
            parked.append({"parked_sequence": change.sequence, "new_reason": reason})
            for key in (change.key, change.previous):
                if key is not None:
                    blocked.setdefault(key, change.sequence)
    state.write(run.now)
    if run.conflicts:
        session.execute(insert(SyncConflict.__table__), run.conflicts)
    totals.applied = len(applied)
    totals.parked = len(parked)
    totals.conflicts = len(run.conflicts)
    totals.refused_updates = sum(
        1 for conflict in run.conflicts if conflict["kind"] == DELETED_CONFLICT
    )
    return applied, parked, totals


def _set_statuses(
    session: Session,
    producer_id: int,
    applied: list[int],
    parked: list[dict],
    now: datetime,
) -> None:
    """Record what became of a run: the applied in as few statements as the
    runs of consecutive sequences they form, the parked one by one."""
    table = IncomingTransaction.__table__
    connection = session.connection()
    for first, last in _runs(applied):
        connection.execute(
            update(table)
            .where(
                table.c.producer_id == producer_id,
                table.c.sequence.between(first, last),
            )
            .values(status=APPLIED, reason="", applied=now)
        )
    if parked:
        connection.execute(
            update(table)
            .where(
                table.c.producer_id == producer_id,
                table.c.sequence == bindparam("parked_sequence"),
            )
            .values(status=PARKED, reason=bindparam("new_reason")),
            parked,
        )


def _runs(sequences: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted numbers: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    runs: list[tuple[int, int]] = []
    for number in sequences:
        if runs and runs[-1][1] == number - 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    return runs


def _parked_keys(session: Session, producer_id: int) -> dict[Key, int]:
    table = IncomingTransaction.__table__
    blocked: dict[Key, int] = {}
    for row in session.execute(
        select(table.c.sequence, table.c.model, table.c.natural_key, table.c.payload)
        .where(table.c.producer_id == producer_id, table.c.status == PARKED)
        .order_by(table.c.sequence)
    ):
        blocked.setdefault((row.model, row.natural_key), row.sequence)
        previous = json.loads(row.payload).get("previous_natural_key")
        if previous:
            blocked.setdefault((row.model, canonical_json(previous)), row.sequence)
    return blocked


def _received(session: Session, *where: Any) -> list[Received]:
    table = IncomingTransaction.__table__
    created = func.coalesce(table.c.created, table.c.received, type_=UTCDateTime)
    statement = select(
        table.c.sequence,
        table.c.model,
        table.c.natural_key,
        table.c.action,
        table.c.schema_version,
        table.c.payload,
        created,
        table.c.status,
    )
    rows = session.execute(statement.where(*where).order_by(table.c.sequence))
    return [Received(*row) for row in rows]


def apply_next_run(
    session: Session,
    producer_id: int,
    run_size: int,
    known: Mapping[int, Received] | None = None,
) -> ApplyTotals:
    """Apply the producer's next run of received transactions and advance its
    cursor; the caller commits. Empty totals when it is caught up.

    ``known`` holds transactions this process has just received, as stored:
    a run they cover whole is not read back from the database."""
    lock_producer(session, producer_id)
    producer = session.get(SyncProducer, producer_id, populate_existing=True)
    start = producer.applied_through
    end = min(start + run_size, producer.received_through)
    if end <= start:
        return ApplyTotals()
    sequences = range(start + 1, end + 1)
    if known and all(sequence in known for sequence in sequences):
        rows = [known[sequence] for sequence in sequences]
    else:
        table = IncomingTransaction.__table__
        rows = _received(
            session,
            table.c.producer_id == producer_id,
            table.c.sequence > start,
            table.c.sequence <= end,
        )
    blocked = _parked_keys(session, producer_id)
    applied, parked, totals = _apply_run(session, rows, producer_id, blocked)
    _set_statuses(session, producer_id, applied, parked, utcnow())
    producer.applied_through = end
    return totals


def retry_parked(session: Session, producer_id: int) -> ApplyTotals:
    """Try the producer's parked transactions again, in order; caller commits."""
    lock_producer(session, producer_id)
    table = IncomingTransaction.__table__
    rows = _received(
        session, table.c.producer_id == producer_id, table.c.status == PARKED
    )
    applied, parked, totals = _apply_run(session, rows, producer_id, {})
    _set_statuses(session, producer_id, applied, parked, utcnow())
    return ApplyTotals(
        unparked=totals.applied,
        conflicts=totals.conflicts,
        refused_updates=totals.refused_updates,
    )


def producers_with_parked(session: Session) -> list[int]:
    table = IncomingTransaction.__table__
    return list(
        session.scalars(
            select(table.c.producer_id).where(table.c.status == PARKED).distinct()
        )
    )


def producers_behind(session: Session) -> list[int]:
    return list(
        session.scalars(
            select(SyncProducer.id).where(
                SyncProducer.applied_through < SyncProducer.received_through
            )
        )
    )


def _met_another_run(exc: Exception) -> bool:
    """Whether a pass failed only because another pass wrote the same record
    at the same moment (the same new key, a deadlock of row locks)."""
    if isinstance(exc, IntegrityError):
        return True
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in RETRIED_STATES


def committed(
    session: Session, commit: Callable[[], None], step: Callable[[], ApplyTotals]
) -> ApplyTotals:
    """Run one pass and commit it; a pass that met another at the same record
    is rolled back and run again, when the other's records are there to see."""
    for attempt in range(1, RUN_ATTEMPTS + 1):
        try:
            totals = step()
            commit()
            return totals
        except DBAPIError as exc:
            session.rollback()
            if attempt == RUN_ATTEMPTS or not _met_another_run(exc):
                raise
    raise AssertionError("unreachable")


def retry_all_parked(session: Session, commit: Callable[[], None]) -> ApplyTotals:
    """Retry every producer's parked transactions, committing after each."""
    totals = ApplyTotals()
    for producer_id in producers_with_parked(session):
        totals.add(
            committed(session, commit, lambda p=producer_id: retry_parked(session, p))
        )
    return totals


def apply_producer(
    session: Session,
    producer_id: int,
    commit: Callable[[], None],
    run_size: int = 1000,
    retry: bool = True,
    known: Mapping[int, Received] | None = None,
) -> ApplyTotals:
    """Apply everything received from one producer, a committed run at a time;
    then, if anything was applied and ``retry`` is set, retry what any producer
    parked (a new record may be the parent they wait for)."""
    totals = ApplyTotals()
    while True:
        run = committed(
            session,
            commit,
            lambda: apply_next_run(session, producer_id, run_size, known),
        )
        if not (run.applied or run.parked or run.quarantined or run.held):
            break
        totals.add(run)
    if retry and totals.applied:
        totals.add(retry_all_parked(session, commit))
    return totals


__all__ = [
    "ApplyTotals",
    "Received",
    "apply_next_run",
    "apply_producer",
    "producers_behind",
    "retry_all_parked",
    "retry_parked",
]

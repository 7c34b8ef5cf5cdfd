"""Producers: registering them, locking one's row, and reporting where each
one stands (cursors, gaps, problems)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from sync.models import (
    APPLIED,
    HELD,
    OPEN,
    PARKED,
    QUARANTINED,
    RECEIVED,
    IncomingTransaction,
    RejectedTransaction,
    SyncConflict,
    SyncProducer,
)
from sync.wire.crypto import new_device_key
from sync.wire.signing import check_public_key, new_credential, public_key_of
from tracker.db_types import utcnow
from tracker.devices import LinkedDevice
from tracker.fields import FieldError, Fields, Rule

PRODUCER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
LISTED_PROBLEMS = 100
MAX_REPORTED_RANGES = 20


class ProducerRefused(FieldError):
    """The registration is invalid; ``field`` names the culprit."""


def _producer_id(field: str, value: Any) -> str:
    if not isinstance(value, str) or not PRODUCER_ID.match(value):
        raise ProducerRefused(
            field,
            "1 to 100 letters, digits, '.', '_', ':' or '-', starting with a"
            " letter or digit",
        )
    return value


def _description(field: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) > 200:
        raise ProducerRefused(field, "a text of at most 200 characters")
    return value


def _public_key(field: str, value: Any) -> str:
    try:
        check_public_key(value)
    except (ValueError, TypeError, AttributeError):
        raise ProducerRefused(
            field, "must be a 32-byte Ed25519 key in URL-safe base64"
        ) from None
    return value


def _encrypt(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ProducerRefused(field, "true or false")
    return value


# What registering a producer takes, checked here and documented by sync.openapi.
PRODUCER_FIELDS = Fields(
    {
        "producer_id": Rule(
            _producer_id,
            {"type": "string", "pattern": PRODUCER_ID.pattern, "maxLength": 100},
        ),
        "description": Rule(_description, {"type": "string", "maxLength": 200}),
        "public_key": Rule(
            _public_key,
            {
                "type": "string",
                "description": "the device's own Ed25519 public key, URL-safe"
                " base64; without it, a credential is made",
            },
        ),
        "encrypt": Rule(_encrypt, {"type": "boolean"}),
    },
    required=("producer_id",),
    closed=True,
)


def _key_pair(public_key: str | None) -> tuple[str | None, str]:
    """The credential to issue (None when the device gave its own public key)
    and the public key to keep."""
    if public_key is None:
        credential = new_credential()
        return credential, public_key_of(credential)
    return None, PRODUCER_FIELDS.clean("public_key", public_key)


def register_producer(
    session: Session,
    producer_id: str,
    description: str = "",
    public_key: str | None = None,
    encrypt: bool = False,
) -> tuple[SyncProducer, str | None, str | None]:
    """Register a producer; return it with the credential to install on the
    device (when no public key was given) and the encryption key (if asked)."""
    producer_id = PRODUCER_FIELDS.clean("producer_id", producer_id)
    description = PRODUCER_FIELDS.clean("description", description)
    credential, public_key = _key_pair(public_key)
    exists = session.scalar(
        select(SyncProducer.id).where(SyncProducer.producer_id == producer_id)
    )
    if exists is not None:
        raise ProducerRefused(
            "producer_id",
            f"{producer_id!r} is already registered (give a reinstalled device a"
            " new credential with manage.py sync reprovision)",
        )
    encryption_key = new_device_key() if encrypt else None
    producer = SyncProducer(
        producer_id=producer_id,
        description=description,
        public_key=public_key,
        encryption_key=encryption_key,
    )
    session.add(producer)
    return producer, credential, encryption_key


def producer_named(session: Session, producer_id: str) -> SyncProducer | None:
    return session.scalar(select(SyncProducer).filter_by(producer_id=producer_id))


def reprovision_producer(
    session: Session,
    producer_id: str,
    public_key: str | None = None,
    void_old: bool = False,
) -> tuple[SyncProducer, str | None]:
    """Give a producer a new credential (or the device's own new public key)
    and enable it. Its history and cursors stay, so the device continues after
    the highest sequence the server holds. Return the producer and the
    credential to install (None when a key was given).

    The old credential is retired, not void: files the device signed with it
    before (carried later) are still taken, up to the last sequence before the
    device first speaks with its new credential. It is void at once when
    ``void_old`` is set or the producer was disabled (a lost device)."""
    producer = producer_named(session, producer_id)
    if producer is None:
        raise ProducerRefused("producer_id", f"no producer {producer_id!r}")
    credential, public_key = _key_pair(public_key)
    now = utcnow()
    if producer.active and not void_old:
        producer.retired_keys = [
            *(producer.retired_keys or []),
            {
                "public_key": producer.public_key,
                "retired": now.isoformat(),
                "through": None,
            },
        ]
    else:
        producer.retired_keys = []
    producer.public_key = public_key
    producer.credential_changed = now
    producer.active = True
    return producer, credential


def producer_position(producer: SyncProducer) -> dict[str, Any]:
    """Where a producer stands, for a device recovering after a reinstall."""
    return {
        "producer": producer.producer_id,
        "received_through": producer.received_through,
        "highest_received": producer.highest_received,
        "next_sequence": producer.highest_received + 1,
    }


def held_hashes(
    session: Session, producer: SyncProducer, sequences: list[int]
) -> dict[str, str]:
    """The hashes of the producer's transactions the server holds among
    ``sequences``, by sequence (as text, a JSON object's keys)."""
    table = IncomingTransaction.__table__
    rows = session.execute(
        select(table.c.sequence, table.c.hash).where(
            table.c.producer_id == producer.id, table.c.sequence.in_(sequences)
        )
    )
    return {str(sequence): digest for sequence, digest in rows}


def supersede_rejected(
    session: Session, producer: SyncProducer, sequences: list[int]
) -> int:
    """Drop the rejected copies of the producer's ``sequences``: a recovering
    device names its unsent changes, and renumbers after the server's those
    whose numbers hold other changes here, so each comes again under a new
    number (and a rejected copy no longer counts against the producer). The
    caller commits."""
    result = session.execute(
        delete(RejectedTransaction).where(
            RejectedTransaction.producer_id == producer.id,
            RejectedTransaction.sequence.in_(sequences),
        )
    )
    return result.rowcount


def lock_producer(session: Session, producer_id: int) -> None:
    """Take the producer's row lock: receipts and applies of one producer queue.

    A write comes first so that SQLite takes its write lock before reading.
    """
    session.execute(
        update(SyncProducer)
        .where(SyncProducer.id == producer_id)
        .values(applied_through=SyncProducer.applied_through)
    )


def missing_ranges(session: Session, producer: SyncProducer) -> list[list[int]]:
    """The sequence ranges held back because earlier ones have not arrived."""
    if producer.highest_received <= producer.received_through:
        return []
    table = IncomingTransaction.__table__
    ranges = []
    expected = producer.received_through + 1
    for sequence in session.scalars(
        select(table.c.sequence)
        .where(
            table.c.producer_id == producer.id,
            table.c.sequence > producer.received_through,
        )
        .order_by(table.c.sequence)
    ):
        if sequence > expected:
            ranges.append([expected, sequence - 1])
            if len(ranges) == MAX_REPORTED_RANGES:
                break
        expected = sequence + 1
    return ranges


def _status_counts(session: Session) -> dict[int, dict[str, int]]:
    table = IncomingTransaction.__table__
    counts: dict[int, dict[str, int]] = {}
    for producer_id, status, count in session.execute(
        select(table.c.producer_id, table.c.status, func.count())
        .where(table.c.status.in_((RECEIVED, APPLIED, PARKED, QUARANTINED, HELD)))
        .group_by(table.c.producer_id, table.c.status)
    ):
        counts.setdefault(producer_id, {})[status] = count
    rejected = RejectedTransaction.__table__
    for producer_id, count in session.execute(
        select(rejected.c.producer_id, func.count()).group_by(rejected.c.producer_id)
    ):
        counts.setdefault(producer_id, {})["rejected"] = count
    for producer_id, count in open_conflict_counts(session).items():
        counts.setdefault(producer_id, {})["conflicts"] = count
    return counts


def open_conflict_counts(session: Session) -> dict[int, int]:
    """How many open conflicts each producer (row id) is a side of."""
    counts: dict[int, int] = {}
    for column in (SyncConflict.applied_producer_id, SyncConflict.other_producer_id):
        for producer_id, count in session.execute(
            select(column, func.count())
            .where(SyncConflict.status == OPEN, column.is_not(None))
            .group_by(column)
        ):
            counts[producer_id] = counts.get(producer_id, 0) + count
    return counts


def producer_summary(
    session: Session, producer: SyncProducer, counts: dict[str, int]
) -> dict[str, Any]:
    return {
        "producer_id": producer.producer_id,
        "description": producer.description,
        "active": producer.active,
        "encrypted": producer.encryption_key is not None,
        "received_through": producer.received_through,
        "highest_received": producer.highest_received,
        "applied_through": producer.applied_through,
        "lag": producer.highest_received - producer.applied_through,
        "applied": counts.get(APPLIED, 0),
        "pending": counts.get(RECEIVED, 0),
        "parked": counts.get(PARKED, 0),
        "quarantined": counts.get(QUARANTINED, 0),
        "held": counts.get(HELD, 0),
        "rejected": counts.get("rejected", 0),
        "conflicts": counts.get("conflicts", 0),
        "missing": missing_ranges(session, producer),
        "last_contact": producer.last_contact,
        "credential_changed": producer.credential_changed,
    }


def all_producer_summaries(session: Session) -> list[dict[str, Any]]:
    counts = _status_counts(session)
    return [
        producer_summary(session, producer, counts.get(producer.id, {}))
        for producer in session.scalars(
            select(SyncProducer).order_by(SyncProducer.producer_id)
        )
    ]


def problems(session: Session, producer: SyncProducer) -> dict[str, list[dict]]:
    """The producer's parked, quarantined and rejected transactions, with reasons."""
    table = IncomingTransaction.__table__
    listed: dict[str, list[dict]] = {PARKED: [], QUARANTINED: [], HELD: []}
    for status in listed:
        for row in session.execute(
            select(table.c.sequence, table.c.model, table.c.natural_key, table.c.reason)
            .where(table.c.producer_id == producer.id, table.c.status == status)
            .order_by(table.c.sequence)
            .limit(LISTED_PROBLEMS)
        ):
            listed[status].append(
                {
                    "sequence": row.sequence,
                    "model": row.model,
                    "natural_key": row.natural_key,
                    "reason": row.reason,
                }
            )
    listed["rejected"] = [
        {"sequence": row.sequence, "hash": row.hash, "reason": row.reason}
        for row in session.scalars(
            select(RejectedTransaction)
            .where(RejectedTransaction.producer_id == producer.id)
            .order_by(RejectedTransaction.sequence)
            .limit(LISTED_PROBLEMS)
        )
    ]
    return listed


def producer_detail(session: Session, producer: SyncProducer) -> dict[str, Any]:
    counts = _status_counts(session).get(producer.id, {})
    listed = problems(session, producer)
    return {
        **producer_summary(session, producer, counts),
        "parked_transactions": listed[PARKED],
        "quarantined_transactions": listed[QUARANTINED],
        "held_transactions": listed[HELD],
        "rejected_transactions": listed["rejected"],
    }


def linked_producers(session: Session, instance_id: int) -> list[LinkedDevice]:
    """The producers linked to a registry instance, as its page shows them."""
    counts = _status_counts(session)
    devices = []
    for producer in session.scalars(
        select(SyncProducer).where(SyncProducer.instance_id == instance_id)
    ):
        summary = producer_summary(session, producer, counts.get(producer.id, {}))
        devices.append(
            LinkedDevice(
                kind="sync producer",
                name=producer.producer_id,
                status=(
                    f"received through {summary['received_through']}, "
                    f"applied through {summary['applied_through']}, "
                    f"{summary['quarantined']} quarantined"
                ),
                last_contact=producer.last_contact,
            )
        )
    return devices


def link_producer(
    session: Session, producer_id: str, instance_id: int | None
) -> SyncProducer:
    """Link a producer to a registry instance (None unlinks it); callers commit."""
    producer = session.scalar(select(SyncProducer).filter_by(producer_id=producer_id))
    if producer is None:
        raise ProducerRefused(
            "producer_id", f"no producer {producer_id!r} is registered"
        )
    producer.instance_id = instance_id
    return producer

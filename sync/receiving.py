"""Receiving a verified bundle, the second step of a delivery: its transactions
are stored once per (producer, sequence), to be applied next.

A sequence seen again with the same hash is a no-op; with a different hash it is
rejected and kept aside. A transaction of a model not on SYNC_MODELS is held,
and applied once the model is listed; one whose payload cannot be opened (it
does not match its hash, no key is registered) is quarantined with its reason
and its body, to be re-applied once the cause is fixed. Either way the
producer's order is kept and nothing is silently dropped.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sync.applying import Received
from sync.models import (
    HELD,
    QUARANTINED,
    RECEIVED,
    IncomingTransaction,
    RejectedTransaction,
    SyncProducer,
)
from sync.producers import lock_producer
from sync.storing import insert_rows
from sync.verifying import VerifiedBundle, bound_retired_keys
from sync.wire.crypto import InvalidPayload
from sync.wire.payloads import canonical_json, open_transaction
from tracker.db_types import utcnow
from tracker.devices import note_device_contact

VIA_SYNC = "sync"  # the channel of contact, for the registry


@dataclass
class Receipt:
    producer: SyncProducer
    new: int = 0
    duplicates: int = 0
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    held: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    # The new transactions by sequence, for applying them without reading back.
    known: dict[int, Received] = field(default_factory=dict)


def _check_reference(value: Any, where: str) -> None:
    if not (
        isinstance(value, dict)
        and isinstance(value.get("model"), str)
        and isinstance(value.get("natural_key"), list)
        and value["natural_key"]
    ):
        raise InvalidPayload(f"{where} must name a model and a natural key")


def _payload_text(
    transaction: dict[str, Any], encryption_key: str | None
) -> tuple[dict[str, Any], str]:
    """Open a wire transaction's payload and check its shape; return it and its
    plaintext, or raise InvalidPayload."""
    if transaction["encrypted"] and not encryption_key:
        raise InvalidPayload(
            "the payload is encrypted but no key is registered for the producer"
        )
    payload, text = open_transaction(transaction, encryption_key)
    if not isinstance(payload, dict) or not isinstance(payload.get("fields"), dict):
        raise InvalidPayload("the payload has no fields object")
    if payload.get("schema_version") != transaction["schema_version"]:
        raise InvalidPayload("the payload's schema version differs")
    parents = payload.get("parents", {})
    if not isinstance(parents, dict):
        raise InvalidPayload("the payload's parents must be an object")
    for name, parent in parents.items():
        _check_reference(parent, f"parent {name}")
    previous = payload.get("previous_natural_key")
    if previous is not None and not (isinstance(previous, list) and previous):
        raise InvalidPayload("previous_natural_key must be a non-empty list")
    local = payload.get("local_fields", [])
    if not isinstance(local, list) or not all(isinstance(n, str) for n in local):
        raise InvalidPayload("local_fields must be a list of field names")
    return payload, text


def _created(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def held_reason(model: str) -> str:
    return f"model {model!r} is not on SYNC_MODELS: held, and applied once it is listed"


def opened(
    transaction: dict[str, Any],
    encryption_key: str | None,
    allowed_models: Collection[str],
) -> tuple[str, str, str | None, dict[str, Any] | None]:
    """What becomes of a wire transaction: (status, reason, plaintext payload,
    the payload parsed)."""
    try:
        payload, text = _payload_text(transaction, encryption_key)
    except InvalidPayload as exc:
        return QUARANTINED, str(exc), None, None
    if transaction["model"] not in allowed_models:
        return HELD, held_reason(transaction["model"]), text, payload
    return RECEIVED, "", text, payload


def _row(
    transaction: dict[str, Any],
    producer: SyncProducer,
    allowed_models: Collection[str],
    operation_id: int | None,
    now: datetime,
) -> tuple[dict[str, Any], Received]:
    """The row to store, and the transaction as applying reads it."""
    status, reason, text, payload = opened(
        transaction, producer.encryption_key, allowed_models
    )
    row = {
        "producer_id": producer.id,
        "sequence": transaction["sequence"],
        "model": transaction["model"],
        "natural_key": canonical_json(transaction["natural_key"]),
        "action": transaction["action"],
        "schema_version": transaction["schema_version"],
        "payload": text,
        "body": canonical_json(transaction) if text is None else None,
        "hash": transaction["hash"],
        "created": _created(transaction["created"]),
        "received": now,
        "status": status,
        "reason": reason,
        "operation_id": operation_id,
    }
    known = Received(
        row["sequence"],
        row["model"],
        row["natural_key"],
        row["action"],
        row["schema_version"],
        payload,
        row["created"] or now,
        status,
    )
    return row, known


def receive(
    session: Session,
    verified: VerifiedBundle,
    allowed_models: Collection[str],
    operation_id: int | None = None,
) -> Receipt:
    """Store the verified bundle's new transactions and move the producer's
    received cursor; the caller commits."""
    producer, bundle = verified.producer, verified.bundle
    lock_producer(session, producer.id)
    session.refresh(producer)
    receipt = Receipt(producer)
    table = IncomingTransaction.__table__
    known = dict(
        session.execute(
            select(table.c.sequence, table.c.hash).where(
                table.c.producer_id == producer.id,
                table.c.sequence.between(bundle.first_sequence, bundle.last_sequence),
            )
        ).all()
    )
    now = utcnow()
    rows = []
    for transaction in bundle.transactions:
        sequence = transaction["sequence"]
        if sequence not in known:
            row, receipt.known[sequence] = _row(
                transaction, producer, allowed_models, operation_id, now
            )
            if row["status"] in (QUARANTINED, HELD):
                listed = (
                    receipt.quarantined
                    if row["status"] == QUARANTINED
                    else (receipt.held)
                )
                listed.append({"sequence": sequence, "reason": row["reason"]})
            rows.append(row)
        elif known[sequence] == transaction["hash"]:
            receipt.duplicates += 1
        else:
            _reject(session, producer, transaction, operation_id, receipt)
    if rows:
        insert_rows(session, table, rows)
    receipt.new = len(rows)
    if verified.current_key and (rows or receipt.duplicates):
        # The device speaks with its new credential: the old one signs no
        # more than what came before this, or what the server held already.
        bound_retired_keys(producer, bundle.first_sequence - 1)
    advance_received(session, producer, bundle.last_sequence, now)
    return receipt


def _reject(
    session: Session,
    producer: SyncProducer,
    transaction: dict[str, Any],
    operation_id: int | None,
    receipt: Receipt,
) -> None:
    sequence = transaction["sequence"]
    reason = (
        f"sequence {sequence} was already received with a different hash:"
        " the device's history changed (wiped, reinstalled or restored from a"
        " backup?): on the device, run flask sync recover URL to continue after"
        " the sequences the server holds"
    )
    receipt.rejected.append({"sequence": sequence, "reason": reason})
    exists = session.scalar(
        select(RejectedTransaction.id).where(
            RejectedTransaction.producer_id == producer.id,
            RejectedTransaction.sequence == sequence,
            RejectedTransaction.hash == transaction["hash"],
        )
    )
    if exists is None:
        session.add(
            RejectedTransaction(
                producer_id=producer.id,
                sequence=sequence,
                hash=transaction["hash"],
                reason=reason,
                body=canonical_json(transaction),
                operation_id=operation_id,
            )
        )


def advance_received(
    session: Session, producer: SyncProducer, highest: int, now: datetime
) -> None:
    """Move ``received_through`` over every sequence that has now arrived."""
    table = IncomingTransaction.__table__
    through = producer.received_through
    later = session.scalars(
        select(table.c.sequence)
        .where(table.c.producer_id == producer.id, table.c.sequence > through)
        .order_by(table.c.sequence)
    )
    for sequence in later:
        if sequence != through + 1:
            break
        through = sequence
    producer.received_through = through
    producer.highest_received = max(producer.highest_received, highest)
    producer.last_contact = now
    note_device_contact(session, producer.instance_id, VIA_SYNC, now)


__all__ = ["Receipt", "receive"]

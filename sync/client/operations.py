"""What a field client does with its outgoing transactions; the caller commits."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from sync.client.models import PRODUCER_ROW, SyncConfigurationError, utc_now
from sync.wire.bundles import transaction_wire
from sync.wire.crypto import InvalidPayload
from sync.wire.payloads import open_transaction
from sync.wire.signing import InvalidKey, public_key_of


def configure_producer(
    session: Session,
    state_model: type,
    producer_id: str,
    encryption_key: str | None = None,
    credential: str | None = None,
) -> None:
    """Name the producer this database speaks for; set or clear its encryption
    key and its signing credential (issued by the server for this producer)."""
    if not producer_id or len(producer_id) > 100:
        raise SyncConfigurationError("a producer id is 1 to 100 characters")
    if credential is not None:
        try:
            public_key_of(credential)
        except InvalidKey as exc:
            raise SyncConfigurationError(str(exc)) from None
    table = state_model.__table__
    state = session.execute(
        select(table.c.producer_id, table.c.next_sequence).where(
            table.c.id == PRODUCER_ROW
        )
    ).first()
    if state is None:
        session.execute(
            insert(table).values(
                id=PRODUCER_ROW,
                producer_id=producer_id,
                next_sequence=1,
                encryption_key=encryption_key,
                credential=credential,
                exported_through=0,
            )
        )
        return
    if state.producer_id != producer_id and state.next_sequence > 1:
        raise SyncConfigurationError(
            f"this database already recorded changes as {state.producer_id!r}"
        )
    session.execute(
        update(table)
        .where(table.c.id == PRODUCER_ROW)
        .values(
            producer_id=producer_id,
            encryption_key=encryption_key,
            credential=credential,
        )
    )


def pending_transactions(
    session: Session, outgoing_model: type, limit: int = 500
) -> list[Any]:
    """Return up to ``limit`` unsent transactions in sequence order."""
    return list(
        session.scalars(
            select(outgoing_model)
            .where(outgoing_model.sent.is_(False))
            .order_by(outgoing_model.producer_id, outgoing_model.sequence)
            .limit(limit)
        )
    )


def mark_sent(
    session: Session, outgoing_model: type, producer_id: str, sequences: Iterable[int]
) -> int:
    """Mark acknowledged transactions sent; return how many changed."""
    numbers = list(sequences)
    if not numbers:
        return 0
    table = outgoing_model.__table__
    changed = session.execute(
        update(table)
        .where(
            table.c.producer_id == producer_id,
            table.c.sequence.in_(numbers),
            table.c.sent.is_(False),
        )
        .values(sent=True, sent_at=utc_now())
    )
    return changed.rowcount


def open_payload(transaction: Any, key: str | bytes | None = None) -> dict[str, Any]:
    """Return a transaction's payload, decrypted and checked against its hash."""
    if transaction.encrypted and key is None:
        raise InvalidPayload("the payload is encrypted and no key was given")
    payload, _ = open_transaction(transaction_wire(transaction), key)
    return payload

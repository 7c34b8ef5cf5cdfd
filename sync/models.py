"""The server's side of sync: producers, what they sent, and the records applied."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tracker.db_types import EncryptedText, UTCDateTime, utcnow
from tracker.extensions import db

RECEIVED = "received"
APPLIED = "applied"
PARKED = "parked"
QUARANTINED = "quarantined"
# Held: a model not (yet) on SYNC_MODELS; applied once it is listed.
HELD = "held"
STATUSES = (RECEIVED, APPLIED, PARKED, QUARANTINED, HELD)

# A conflict is open until someone resolves it, in one of three ways.
OPEN = "open"
RESOLVED = "resolved"
KEEP_APPLIED = "keep_applied"
TAKE_OTHER = "take_other"
MARK_RESOLVED = "mark_resolved"
RESOLUTIONS = (KEEP_APPLIED, TAKE_OTHER, MARK_RESOLVED)
# What a conflict is about: one field two producers changed concurrently, or
# an update of a record another producer deleted.
FIELD_CONFLICT = "field"
DELETED_CONFLICT = "deleted"
# The key of a record's ``changes`` that stamps its deletion.
DELETION = ""


class SyncProducer(db.Model):
    """A field device that sends transactions, with its credential and cursors.

    ``received_through`` is the last sequence up to which everything arrived;
    ``applied_through`` the last one processed (applied, or set aside as parked
    or quarantined), always advanced in the same transaction as the records.
    """

    __tablename__ = "sync_producers"

    id: Mapped[int] = mapped_column(primary_key=True)
    producer_id: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    public_key: Mapped[str] = mapped_column(String(64))
    # Kept encrypted at rest (tracker.crypto); the clear key is 64 hex digits.
    encryption_key: Mapped[str | None] = mapped_column(EncryptedText)
    active: Mapped[bool] = mapped_column(default=True)
    received_through: Mapped[int] = mapped_column(BigInteger, default=0)
    highest_received: Mapped[int] = mapped_column(BigInteger, default=0)
    applied_through: Mapped[int] = mapped_column(BigInteger, default=0)
    last_contact: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the credential was last replaced (re-provisioned); the old one is void.
    credential_changed: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Credentials replaced by a re-provision, still good for what the device
    # signed before it: [{"public_key", "retired" (ISO time), "through"}], where
    # "through" is the last sequence the key may sign (None until the device
    # first speaks with its new credential, which bounds it).
    retired_keys: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # The registry's instance that is this device, if an admin linked them.
    instance_id: Mapped[int | None] = mapped_column(
        ForeignKey("instances.id", ondelete="SET NULL"), index=True
    )


class IncomingTransaction(db.Model):
    """One transaction as received, at most once per (producer, sequence)."""

    __tablename__ = "sync_incoming_transactions"
    __table_args__ = (
        UniqueConstraint("producer_id", "sequence"),
        Index("ix_sync_incoming_status", "producer_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    producer_id: Mapped[int] = mapped_column(
        ForeignKey("sync_producers.id", ondelete="CASCADE")
    )
    sequence: Mapped[int] = mapped_column(BigInteger)
    model: Mapped[str] = mapped_column(String(100))
    natural_key: Mapped[str] = mapped_column(String(500))  # canonical JSON list
    action: Mapped[str] = mapped_column(String(10))
    schema_version: Mapped[int]
    payload: Mapped[str | None] = mapped_column(Text)  # plaintext JSON
    # The transaction as sent, kept while its payload could not be opened, so
    # that it can be re-applied once the cause is fixed.
    body: Mapped[str | None] = mapped_column(Text)
    hash: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(12), default=RECEIVED)
    reason: Mapped[str] = mapped_column(Text, default="")
    applied: Mapped[datetime | None] = mapped_column(UTCDateTime)
    operation_id: Mapped[int | None] = mapped_column(
        ForeignKey("batch_operations.id", ondelete="SET NULL")
    )


class RejectedTransaction(db.Model):
    """A copy of a sequence already received with a different hash, kept aside."""

    __tablename__ = "sync_rejected_transactions"
    __table_args__ = (UniqueConstraint("producer_id", "sequence", "hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    producer_id: Mapped[int] = mapped_column(
        ForeignKey("sync_producers.id", ondelete="CASCADE")
    )
    sequence: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)  # the transaction as sent
    received: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    operation_id: Mapped[int | None] = mapped_column(
        ForeignKey("batch_operations.id", ondelete="SET NULL")
    )


class SyncRecord(db.Model):
    """The server's copy of a synchronised record, found by model and natural key.

    ``version`` counts the transactions applied to it, so a transaction applied
    twice would show. ``changes`` says, for each field, which change set it last:
    ``[producer row id, sequence, made (ms since 1970), applied (ms)]``, so that a
    concurrent change of the same field by another producer is seen.

    A deleted record stays as a tombstone: ``deleted`` is when the delete was
    applied, ``changes[""]`` stamps it, and its last fields are kept, so that a
    poller learns of the delete and a late update from a device that missed it
    is a conflict, not a partial record brought back.
    """

    __tablename__ = "sync_records"
    __table_args__ = (UniqueConstraint("model", "natural_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(100))
    natural_key: Mapped[str] = mapped_column(String(500))  # canonical JSON list
    fields: Mapped[dict[str, Any]] = mapped_column(JSON)
    parents: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    schema_version: Mapped[int] = mapped_column(default=1)
    version: Mapped[int] = mapped_column(default=1)
    producer_id: Mapped[int | None] = mapped_column(
        ForeignKey("sync_producers.id", ondelete="SET NULL")
    )
    sequence: Mapped[int] = mapped_column(BigInteger)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SyncConflict(db.Model):
    """Two producers changed one field of a record concurrently (each change was
    made before the other was applied on the server): the one applied later
    won, as always; this keeps both sides until someone resolves it.

    A ``deleted`` conflict is an update of a record another producer deleted:
    the applied side is the delete (the record stays deleted), the other side
    the update, whose fields ``other_value`` holds; ``field`` is empty."""

    __tablename__ = "sync_conflicts"
    __table_args__ = (Index("ix_sync_conflicts_status_model", "status", "model"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(100))
    natural_key: Mapped[str] = mapped_column(String(500))  # canonical JSON list
    field: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(
        String(10), default=FIELD_CONFLICT, server_default=FIELD_CONFLICT
    )
    # The change applied (the record holds its value) and the one it replaced.
    applied_value: Mapped[Any | None] = mapped_column(JSON)
    applied_parent: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    applied_producer_id: Mapped[int | None] = mapped_column(
        ForeignKey("sync_producers.id", ondelete="SET NULL"), index=True
    )
    applied_sequence: Mapped[int] = mapped_column(BigInteger)
    applied_made: Mapped[datetime] = mapped_column(UTCDateTime)
    # When the applied side was applied here (a delete: before the conflict
    # was detected); unknown for conflicts recorded before it was kept.
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    other_value: Mapped[Any | None] = mapped_column(JSON)
    other_parent: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    other_producer_id: Mapped[int | None] = mapped_column(
        ForeignKey("sync_producers.id", ondelete="SET NULL"), index=True
    )
    other_sequence: Mapped[int] = mapped_column(BigInteger)
    other_made: Mapped[datetime] = mapped_column(UTCDateTime)
    other_applied: Mapped[datetime] = mapped_column(UTCDateTime)
    detected: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(10), default=OPEN)
    resolution: Mapped[str | None] = mapped_column(String(20))
    resolved: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )


class ImportedFile(db.Model):
    """A bundle file imported on the server, named by the SHA-256 of its bytes."""

    __tablename__ = "sync_imported_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    producer_id: Mapped[int | None] = mapped_column(
        ForeignKey("sync_producers.id", ondelete="SET NULL")
    )
    first_sequence: Mapped[int] = mapped_column(BigInteger)
    last_sequence: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int]
    imported: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    summary: Mapped[str] = mapped_column(Text, default="")
    operation_id: Mapped[int | None] = mapped_column(
        ForeignKey("batch_operations.id", ondelete="SET NULL")
    )

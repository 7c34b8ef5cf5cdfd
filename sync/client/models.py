"""Recording every change of synchronised models inside the field database.

The field application declares the sync tables on its declarative base, with the
session it writes through, names one producer, and marks the models to
synchronise with ``SyncMixin``::

    OutgoingTransaction, ProducerState = sync_models(db.Model, db.session)

    class Household(SyncMixin, db.Model):
        __natural_key__ = ("code",)

Each insert, update and delete of a ``Household`` writes one outgoing transaction
on the connection of the flush, so it commits or rolls back with the change. The
sequence number comes from one conditional UPDATE of the producer row: the row
lock serialises writers, and a rolled-back change gives its number back, so the
committed numbers have no gaps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.orm import (
    Mapped,
    Mapper,
    ORMExecuteState,
    Session,
    mapped_column,
    scoped_session,
    sessionmaker,
)

from sync.wire.crypto import encrypt_payload
from sync.wire.payloads import canonical_json, json_value, transaction_hash

ACTIONS = ("insert", "update", "delete")
PRODUCER_ROW = 1


class SyncConfigurationError(Exception):
    """A model or database is not set up for sync the way the toolkit needs."""


class ProducerNotConfiguredError(SyncConfigurationError):
    """No producer row exists yet, so no sequence number can be taken."""


class SyncTables(NamedTuple):
    outgoing: Table
    producer: Table


_SYNC_TABLES: dict[MetaData, SyncTables] = {}


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every database, SQLite included."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> Any:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetimes are refused; use UTC")
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


def _refuse_bulk_writes(state: ORMExecuteState) -> None:
    """Bulk statements skip the mapper events, so they would leave no record."""
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    mapper = state.bind_mapper
    if mapper is not None and issubclass(mapper.class_, SyncMixin):
        raise SyncConfigurationError(
            f"bulk {state.statement.__visit_name__} of {mapper.class_.__name__}"
            " bypasses sync recording; change its records through the session"
        )


def sync_models(
    base: type, session: Session | sessionmaker | scoped_session | type[Session]
) -> tuple[type, type]:
    """Declare ``sync_outgoing_transactions`` and ``sync_producer_state`` on the
    application's declarative base; return their classes.

    ``session`` is what the application writes its records through (a scoped
    session such as Flask-SQLAlchemy's ``db.session``, a sessionmaker, a Session
    subclass or one session): its bulk writes of synchronised models are
    refused, since they would leave no outgoing transaction.
    """

    class OutgoingTransaction(base):
        __tablename__ = "sync_outgoing_transactions"
        __table_args__ = (UniqueConstraint("producer_id", "sequence"),)

        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        producer_id: Mapped[str] = mapped_column(String(100))
        sequence: Mapped[int] = mapped_column(BigInteger)
        model: Mapped[str] = mapped_column(String(100))
        natural_key: Mapped[str] = mapped_column(Text)  # canonical JSON list
        action: Mapped[str] = mapped_column(String(10))
        schema_version: Mapped[int] = mapped_column(Integer)
        payload: Mapped[str] = mapped_column(Text)  # JSON, or sealed when encrypted
        encrypted: Mapped[bool] = mapped_column(Boolean, default=False)
        hash: Mapped[str] = mapped_column(String(64))
        created: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
        sent: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
        sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    class ProducerState(base):
        """The one producer this database speaks for, and its next number."""

        __tablename__ = "sync_producer_state"
        __table_args__ = (CheckConstraint(f"id = {PRODUCER_ROW}", name="single_row"),)

        id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
        producer_id: Mapped[str] = mapped_column(String(100))
        next_sequence: Mapped[int] = mapped_column(BigInteger, default=1)
        # URL-safe base64 of a 256-bit key; payloads are sealed while it is set.
        encryption_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
        # The Ed25519 private key this device signs its bundles with.
        credential: Mapped[str | None] = mapped_column(String(64), nullable=True)
        # The last sequence written to an export file.
        exported_through: Mapped[int] = mapped_column(BigInteger, default=0)

    _SYNC_TABLES[base.metadata] = SyncTables(
        OutgoingTransaction.__table__, ProducerState.__table__
    )
    if not event.contains(session, "do_orm_execute", _refuse_bulk_writes):
        event.listen(session, "do_orm_execute", _refuse_bulk_writes)
    return OutgoingTransaction, ProducerState


class SyncMixin:
    """Record every insert, update and delete of a model as an outgoing
    transaction; ``__natural_key__`` names the columns identifying a record on
    every device, ``sync_schema_version`` the payload's version."""

    __natural_key__: tuple[str, ...] = ()
    sync_schema_version: int = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if not cls.__dict__.get("__abstract__", False):
            _check_declared_key(cls)
        super().__init_subclass__(**kwargs)

    @classmethod
    def sync_model_name(cls) -> str:
        return cls.__name__


def _check_declared_key(cls: type) -> None:
    key = getattr(cls, "__natural_key__", ())
    if (
        not key
        or isinstance(key, str)
        or not all(isinstance(name, str) for name in key)
    ):
        raise SyncConfigurationError(
            f"{cls.__name__} uses SyncMixin but declares no __natural_key__: give it"
            " a tuple of the column names that identify a record on every device,"
            " e.g. __natural_key__ = ('code',)"
        )


@event.listens_for(SyncMixin, "after_mapper_constructed", propagate=True)
def _check_key_columns(mapper: Mapper, cls: type) -> None:
    unknown = [name for name in cls.__natural_key__ if name not in mapper.columns]
    if unknown:
        raise SyncConfigurationError(
            f"{cls.__name__}.__natural_key__ names {', '.join(unknown)},"
            " which are not columns of the model"
        )


def take_sequence(connection: Any, producer: Table) -> tuple[str, int, str | None]:
    """Take the producer's next sequence number in the current transaction;
    return the producer id, the number and the encryption key."""
    taken = connection.execute(
        update(producer)
        .where(producer.c.id == PRODUCER_ROW)
        .values(next_sequence=producer.c.next_sequence + 1)
    )
    if taken.rowcount != 1:
        raise ProducerNotConfiguredError(
            "no sync producer is configured: call configure_producer() first"
        )
    row = connection.execute(
        select(
            producer.c.producer_id,
            producer.c.next_sequence,
            producer.c.encryption_key,
        ).where(producer.c.id == PRODUCER_ROW)
    ).one()
    return row.producer_id, row.next_sequence - 1, row.encryption_key


def _tables_for(mapper: Mapper) -> SyncTables:
    tables = _SYNC_TABLES.get(mapper.local_table.metadata)
    if tables is None:
        raise SyncConfigurationError(
            f"sync_models() was not called for the base of {mapper.class_.__name__}"
        )
    return tables


def _column_values(
    mapper: Mapper, connection: Any, target: Any, names: list[str]
) -> dict[str, Any]:
    state = inspect(target)
    values = {name: state.dict[name] for name in names if name in state.dict}
    missing = [mapper.attrs[name] for name in names if name not in values]
    if missing:
        # Server-generated or expired values: read them on the flush's connection.
        where = [
            column == value
            for column, value in zip(
                mapper.primary_key,
                mapper.primary_key_from_instance(target),
                strict=True,
            )
        ]
        row = connection.execute(
            select(*(prop.columns[0] for prop in missing)).where(*where)
        ).one()
        values.update(zip((prop.key for prop in missing), row, strict=True))
    return values


def _changed_names(mapper: Mapper, target: Any) -> list[str]:
    """The columns an update sets: those given a new value, and those the
    database or an onupdate default fills."""
    attrs = inspect(target).attrs
    return [
        prop.key
        for prop in mapper.column_attrs
        if attrs[prop.key].history.has_changes()
        or prop.columns[0].onupdate is not None
        or prop.columns[0].server_onupdate is not None
    ]


def _parents(mapper: Mapper, connection: Any, values: dict[str, Any]) -> dict:
    """The natural keys of the synchronised records this one points to."""
    by_table = {
        other.local_table: other
        for other in mapper.registry.mappers
        if issubclass(other.class_, SyncMixin)
    }
    parents = {}
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        value = values.get(prop.key)
        for foreign_key in column.foreign_keys:
            parent = by_table.get(foreign_key.column.table)
            if parent is None or value is None:
                continue
            key_columns = [
                parent.columns[name] for name in parent.class_.__natural_key__
            ]
            row = connection.execute(
                select(*key_columns).where(foreign_key.column == value)
            ).first()
            if row is not None:
                parents[prop.key] = {
                    "model": parent.class_.sync_model_name(),
                    "natural_key": [json_value(item) for item in row],
                }
    return parents


def record_change(mapper: Mapper, connection: Any, target: Any, action: str) -> None:
    """Write one outgoing transaction for this change on the flush's connection.

    An insert or a delete carries every column; an update only the columns it
    changes, so that the server merges it field by field and a change another
    device made to another field stays, and the natural keys of all its parents.
    An insert names its primary key's columns in ``local_fields``: they differ
    between devices by nature."""
    tables = _tables_for(mapper)
    cls = type(target)
    every = [prop.key for prop in mapper.column_attrs]
    carried = _changed_names(mapper, target) if action == "update" else every
    references = [
        prop.key for prop in mapper.column_attrs if prop.columns[0].foreign_keys
    ]
    wanted = list(dict.fromkeys([*carried, *cls.__natural_key__, *references]))
    values = _column_values(mapper, connection, target, wanted)
    natural_key = [json_value(values[name]) for name in cls.__natural_key__]
    payload: dict[str, Any] = {
        "schema_version": cls.sync_schema_version,
        "fields": {name: json_value(values[name]) for name in carried},
        # Every parent, changed or not: a parent renamed since is named anew.
        "parents": _parents(mapper, connection, values),
    }
    if action == "insert":
        payload["local_fields"] = [
            mapper.get_property_by_column(column).key for column in mapper.primary_key
        ]
    if action == "update":
        previous = inspect(target).info.pop("sync_previous_key", None)
        if previous is not None and previous != natural_key:
            payload["previous_natural_key"] = previous
    producer_id, sequence, key = take_sequence(connection, tables.producer)
    model = cls.sync_model_name()
    text = canonical_json(payload)
    connection.execute(
        insert(tables.outgoing).values(
            producer_id=producer_id,
            sequence=sequence,
            model=model,
            natural_key=canonical_json(natural_key),
            action=action,
            schema_version=cls.sync_schema_version,
            payload=(
                encrypt_payload(text, key, f"{producer_id}:{sequence}") if key else text
            ),
            encrypted=bool(key),
            hash=transaction_hash(
                producer_id, sequence, model, natural_key, action, payload
            ),
            created=utc_now(),
            sent=False,
        )
    )


def _has_column_changes(mapper: Mapper, target: Any) -> bool:
    attrs = inspect(target).attrs
    return any(attrs[prop.key].history.has_changes() for prop in mapper.column_attrs)


def _stored_key(mapper: Mapper, connection: Any, target: Any) -> list[Any] | None:
    """The natural key as stored, read before an update that changes it."""
    attrs = inspect(target).attrs
    names = type(target).__natural_key__
    if not any(attrs[name].history.has_changes() for name in names):
        return None
    where = [
        column == value
        for column, value in zip(
            mapper.primary_key, mapper.primary_key_from_instance(target), strict=True
        )
    ]
    row = connection.execute(
        select(*(mapper.columns[name] for name in names)).where(*where)
    ).first()
    return None if row is None else [json_value(value) for value in row]


@event.listens_for(SyncMixin, "before_update", propagate=True)
def _remember_key(mapper: Mapper, connection: Any, target: Any) -> None:
    # The old value may be expired from the object, so ask the database.
    inspect(target).info["sync_previous_key"] = _stored_key(mapper, connection, target)


@event.listens_for(SyncMixin, "after_insert", propagate=True)
def _record_insert(mapper: Mapper, connection: Any, target: Any) -> None:
    record_change(mapper, connection, target, "insert")


@event.listens_for(SyncMixin, "after_update", propagate=True)
def _record_update(mapper: Mapper, connection: Any, target: Any) -> None:
    # after_update also fires for objects marked dirty with no net change.
    if _has_column_changes(mapper, target):
        record_change(mapper, connection, target, "update")


@event.listens_for(SyncMixin, "before_delete", propagate=True)
def _record_delete(mapper: Mapper, connection: Any, target: Any) -> None:
    # Before the DELETE, while the row can still be read; a failing DELETE
    # rolls the transaction back with it.
    record_change(mapper, connection, target, "delete")

"""The field toolkit: one gap-free transaction per committed change, sealed payloads."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import String, delete, func, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from sync.client import (
    InvalidPayload,
    ProducerNotConfiguredError,
    SyncConfigurationError,
    SyncMixin,
    decrypt_payload,
    encrypt_payload,
    mark_sent,
    new_device_key,
    open_payload,
    pending_transactions,
    sync_models,
    transaction_hash,
)
from tests.sync.field_app import (
    Household,
    Member,
    OutgoingTransaction,
    ProducerState,
    create_field_app,
    field_db,
)

PRODUCER = "tablet-7"
COLUMNS = ("id", "code", "village", "income", "enumerated")


@pytest.fixture
def field(empty_database_url):
    """The field application on an empty database of its own."""
    app = create_field_app(empty_database_url, PRODUCER)
    yield app
    with app.app_context():
        field_db.session.remove()
        field_db.drop_all()
        field_db.engine.dispose()


def transactions() -> list[OutgoingTransaction]:
    return list(
        field_db.session.scalars(
            select(OutgoingTransaction).order_by(OutgoingTransaction.sequence)
        )
    )


def add_household(code: str = "HH-1", **values) -> Household:
    household = Household(code=code, **values)
    field_db.session.add(household)
    field_db.session.commit()
    return household


def test_insert_update_delete_each_write_one_transaction_in_sequence(field):
    with field.app_context():
        household = add_household(
            village="Mochudi", income=Decimal("120.50"), enumerated=date(2024, 3, 1)
        )
        household.village = "Ramotswa"
        field_db.session.commit()
        field_db.session.delete(household)
        field_db.session.commit()
        rows = transactions()
        assert [(r.sequence, r.action, r.model) for r in rows] == [
            (1, "insert", "Household"),
            (2, "update", "Household"),
            (3, "delete", "Household"),
        ]
        assert {r.producer_id for r in rows} == {PRODUCER}
        assert all(json.loads(r.natural_key) == ["HH-1"] for r in rows)
        inserted = open_payload(rows[0])
        assert inserted["schema_version"] == 1
        assert inserted["fields"]["income"] == "120.50"
        assert inserted["fields"]["enumerated"] == "2024-03-01"
        assert open_payload(rows[1])["fields"]["village"] == "Ramotswa"
        assert rows[0].created.tzinfo is not None
        assert not any(r.sent or r.encrypted for r in rows)


def test_an_update_carries_only_the_fields_it_changes(field):
    with field.app_context():
        household = add_household(village="Mochudi", income=Decimal("1.50"))
        field_db.session.add(Member(identifier="M-1", household_id=household.id))
        field_db.session.commit()
        household.village = "Ramotswa"
        field_db.session.commit()
        member = field_db.session.scalar(select(Member))
        member.name = "Ada"
        field_db.session.commit()
        inserted, _, updated, member_update = (open_payload(r) for r in transactions())
        # An insert names the columns that are this device's own (its ids).
        assert inserted["local_fields"] == ["id"]
        assert set(inserted["fields"]) == set(COLUMNS)
        assert updated["fields"] == {"village": "Ramotswa"}
        assert "local_fields" not in updated
        # A child names its parent again (renamed since, perhaps).
        assert member_update["fields"] == {"name": "Ada"}
        assert member_update["parents"] == {
            "household_id": {"model": "Household", "natural_key": ["HH-1"]}
        }


def test_an_unchanged_dirty_record_writes_nothing(field):
    with field.app_context():
        household = add_household(village="Mochudi")
        assert household.village == "Mochudi"  # loaded, so the history is known
        household.village = "Mochudi"
        field_db.session.commit()
        assert len(transactions()) == 1


def test_a_child_carries_its_parents_natural_key_and_schema_version(field):
    seen = datetime(2024, 5, 2, 9, 30, tzinfo=UTC)
    with field.app_context():
        household = add_household("HH-9")
        field_db.session.add(
            Member(identifier="M-1", household_id=household.id, seen=seen)
        )
        field_db.session.commit()
        member = transactions()[-1]
        payload = open_payload(member)
        assert (member.model, member.schema_version) == ("Member", 2)
        assert payload["schema_version"] == 2
        assert payload["parents"] == {
            "household_id": {"model": "Household", "natural_key": ["HH-9"]}
        }
        assert payload["fields"]["seen"].startswith("2024-05-02T09:30:00")


def test_a_changed_natural_key_keeps_the_previous_one(field):
    with field.app_context():
        household = add_household("HH-1")
        household.code = "HH-2"
        field_db.session.commit()
        changed = transactions()[-1]
        assert json.loads(changed.natural_key) == ["HH-2"]
        assert open_payload(changed)["previous_natural_key"] == ["HH-1"]


def test_a_rolled_back_change_leaves_no_transaction_and_no_gap(field):
    with field.app_context():
        field_db.session.add(Household(code="HH-1"))
        field_db.session.flush()
        assert len(transactions()) == 1
        field_db.session.rollback()
        assert transactions() == []
        add_household("HH-2")
        assert [r.sequence for r in transactions()] == [1]


def test_a_failing_change_leaves_no_transaction(field):
    with field.app_context():
        add_household("HH-1")
        field_db.session.add(Household(code="HH-1"))
        with pytest.raises(Exception, match=r"(?i)unique"):
            field_db.session.commit()
        field_db.session.rollback()
        add_household("HH-2")
        assert [r.sequence for r in transactions()] == [1, 2]


def test_concurrent_writers_take_gap_free_unique_sequence_numbers(field):
    errors = []

    def write(worker: int) -> None:
        with field.app_context():
            try:
                for number in range(10):
                    household = Household(code=f"W{worker}-{number}")
                    field_db.session.add(household)
                    field_db.session.commit()
                    if number % 3 == 0:
                        household.village = f"v{number}"
                        field_db.session.commit()
                    if number % 4 == 0:
                        field_db.session.add(Household(code=f"W{worker}-rb{number}"))
                        field_db.session.flush()
                        field_db.session.rollback()
            except Exception as error:  # reported below, with the thread's failure
                errors.append(error)
            finally:
                field_db.session.remove()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with field.app_context():
        sequences = [r.sequence for r in transactions()]
        # 10 inserts and 4 updates per writer; the rolled-back inserts give back.
        assert sequences == list(range(1, 8 * 14 + 1))
        state = field_db.session.get(ProducerState, 1)
        assert state.next_sequence == 8 * 14 + 1


def test_changes_before_a_producer_is_configured_are_refused(field):
    with field.app_context():
        field_db.session.execute(delete(ProducerState))
        field_db.session.commit()
        field_db.session.add(Household(code="HH-1"))
        with pytest.raises(ProducerNotConfiguredError, match="configure_producer"):
            field_db.session.commit()
        field_db.session.rollback()
        assert field_db.session.scalar(select(func.count(Household.id))) == 0


def test_bulk_statements_that_would_skip_recording_are_refused(field):
    with field.app_context():
        add_household("HH-1")
        with pytest.raises(SyncConfigurationError, match="bulk update of Household"):
            field_db.session.execute(update(Household).values(village="x"))
        field_db.session.rollback()
        assert len(transactions()) == 1


def test_a_model_without_a_natural_key_is_refused_by_name():
    class Base(DeclarativeBase):
        pass

    sync_models(Base, sessionmaker())
    with pytest.raises(SyncConfigurationError, match=r"Visit .*__natural_key__"):

        class Visit(SyncMixin, Base):
            __tablename__ = "visits"

            id: Mapped[int] = mapped_column(primary_key=True)


def test_a_natural_key_naming_no_column_is_refused():
    class Base(DeclarativeBase):
        pass

    with pytest.raises(SyncConfigurationError, match=r"Clinic\.__natural_key__.*cod"):

        class Clinic(SyncMixin, Base):
            __tablename__ = "clinics"
            __natural_key__ = ("cod",)

            id: Mapped[int] = mapped_column(primary_key=True)
            code: Mapped[str] = mapped_column(String(10))


def test_the_hash_is_stable_for_equal_content_and_changes_with_it(field):
    arguments = (PRODUCER, 4, "Household", ["HH-1"], "update", {"fields": {"a": 1}})
    same = transaction_hash(*arguments)
    assert same == transaction_hash(
        PRODUCER, 4, "Household", ["HH-1"], "update", {"fields": {"a": 1}}
    )
    assert len(same) == 64
    assert same != transaction_hash(*arguments[:5], {"fields": {"a": 2}})
    assert same != transaction_hash(PRODUCER, 5, *arguments[2:])
    with field.app_context():
        first = add_household("HH-1", village="a")
        first.village = "b"
        field_db.session.commit()
        rows = transactions()
        assert rows[0].hash != rows[1].hash
        assert all(
            r.hash
            == transaction_hash(
                r.producer_id,
                r.sequence,
                r.model,
                json.loads(r.natural_key),
                r.action,
                json.loads(r.payload),
            )
            for r in rows
        )


def test_a_changed_payload_no_longer_matches_its_hash(field):
    with field.app_context():
        add_household("HH-1", village="a")
        row = transactions()[0]
        row.payload = row.payload.replace('"village":"a"', '"village":"b"')
        with pytest.raises(InvalidPayload, match="hash"):
            open_payload(row)


def test_encrypted_payloads_round_trip_and_refuse_tampering():
    key = new_device_key()
    sealed = encrypt_payload('{"a":1}', key, "tablet-7:1")
    assert sealed.startswith("aesgcm1:")
    assert '{"a":1}' not in sealed
    assert decrypt_payload(sealed, key, "tablet-7:1") == '{"a":1}'
    body = sealed[-10:]
    flipped = body[:-3] + ("A" if body[-3] != "A" else "B") + body[-2:]
    with pytest.raises(InvalidPayload, match="tampered"):
        decrypt_payload(sealed[:-10] + flipped, key, "tablet-7:1")
    with pytest.raises(InvalidPayload, match="tampered"):
        decrypt_payload(sealed, new_device_key(), "tablet-7:1")
    with pytest.raises(InvalidPayload, match="tampered"):
        decrypt_payload(sealed, key, "tablet-7:2")
    with pytest.raises(InvalidPayload):
        decrypt_payload('{"a":1}', key)


def test_a_producer_with_a_key_seals_its_payloads(empty_database_url):
    key = new_device_key()
    app = create_field_app(empty_database_url, PRODUCER, key)
    try:
        with app.app_context():
            add_household("HH-1", village="Mochudi")
            row = transactions()[0]
            assert row.encrypted
            assert "Mochudi" not in row.payload
            with pytest.raises(InvalidPayload, match="no key"):
                open_payload(row)
            assert open_payload(row, key)["fields"]["village"] == "Mochudi"
            row.payload = row.payload[:-4] + (
                "AAAA" if row.payload[-4:] != "AAAA" else "BBBB"
            )
            with pytest.raises(InvalidPayload):
                open_payload(row, key)
    finally:
        with app.app_context():
            field_db.session.remove()
            field_db.drop_all()
            field_db.engine.dispose()


def test_pending_transactions_are_marked_sent_once(field):
    with field.app_context():
        for number in range(3):
            add_household(f"HH-{number}")
        pending = pending_transactions(field_db.session, OutgoingTransaction, limit=2)
        assert [r.sequence for r in pending] == [1, 2]
        assert mark_sent(field_db.session, OutgoingTransaction, PRODUCER, [1, 2]) == 2
        assert mark_sent(field_db.session, OutgoingTransaction, PRODUCER, [2]) == 0
        field_db.session.commit()
        field_db.session.expire_all()
        assert [
            r.sequence
            for r in pending_transactions(field_db.session, OutgoingTransaction)
        ] == [3]
        assert transactions()[0].sent_at.tzinfo is not None

"""Field clients push to the server: applied once, in order, by natural key."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from sync.client.transfer import push
from sync.models import IncomingTransaction, SyncProducer, SyncRecord
from sync.receiving import receive
from sync.tasks import apply_pending
from sync.verifying import verify_bundle
from sync.wire.bundles import make_bundle
from tests.sync.field_app import (
    Household,
    Member,
    OutgoingTransaction,
    ProducerState,
    field_db,
)
from tests.sync.support import (
    FIELD_MODELS,
    NO_WAIT,
    AppTransport,
    field_records,
    producer_state,
    register,
    server_records,
    wire,
)
from tracker.extensions import db

URL = "http://server/api/sync/push"


def push_all(field_app, server_app, batch_size=500, transport=None):
    with field_app.app_context():
        summary = push(
            field_db.session,
            OutgoingTransaction,
            ProducerState,
            URL,
            transport or AppTransport(server_app),
            batch_size,
            NO_WAIT,
        )
        field_db.session.remove()
        return summary


def edit(field_app, fn):
    with field_app.app_context():
        fn(field_db.session)
        field_db.session.commit()
        field_db.session.remove()


def test_inserts_updates_renames_and_deletes_reach_the_server(server, make_field):
    field = make_field(server, "tablet-1")

    def first(session):
        household = Household(code="H1", village="Mochudi", income=Decimal("12.50"))
        session.add(household)
        session.add(Household(code="H2", village="Gabane"))
        session.flush()
        session.add(Member(identifier="M1", household_id=household.id, name="Ada"))

    def second(session):
        session.scalar(select(Household).where(Household.code == "H1")).code = "H1b"
        session.delete(session.scalar(select(Household).where(Household.code == "H2")))
        session.scalar(select(Member)).name = "Ada L."

    edit(field, first)
    edit(field, second)
    summary = push_all(field, server, batch_size=2)
    assert summary.sent == 6 and summary.bundles == 3
    assert server_records(server) == field_records(field)
    with server.app_context():
        producer = db.session.scalar(select(SyncProducer))
        assert (producer.received_through, producer.applied_through) == (6, 6)
        member = db.session.scalar(
            select(SyncRecord).where(SyncRecord.model == "Member")
        )
        assert member.parents["household_id"]["natural_key"] == ["H1b"]
        assert member.version == 2


def test_a_lost_acknowledgement_resends_without_applying_twice(server, make_field):
    field = make_field(server, "tablet-1")
    edit(field, lambda s: s.add_all(Household(code=f"H{i}") for i in range(5)))
    transport = AppTransport(server)
    transport.lose_replies = 1
    summary = push_all(field, server, transport=transport)
    assert summary.sent == 5 and summary.duplicates == 5
    with server.app_context():
        versions = db.session.scalars(select(SyncRecord.version)).all()
        assert sorted(versions) == [1] * 5
        assert db.session.scalar(select(func.count(IncomingTransaction.id))) == 5


def test_encrypted_payloads_are_opened_with_the_producer_key(server, make_field):
    field = make_field(server, "tablet-9", encrypt=True)
    edit(field, lambda s: s.add(Household(code="HX", village="Kanye")))
    push_all(field, server)
    assert server_records(server) == field_records(field)


def test_a_child_waits_for_a_parent_from_another_device(server):
    first, _ = register(server, "tablet-1")
    second, _ = register(server, "tablet-2")
    parent = {"household_id": {"model": "Household", "natural_key": ["H1"]}}
    orphan = [
        wire("tablet-2", 1, "Member", ["M9"], "insert", {"name": "Ada"}, parent),
        wire("tablet-2", 2, "Household", ["H5"], "insert", {"village": "Kanye"}),
        wire("tablet-2", 3, "Member", ["M9"], "update", {"name": "Ada L."}, parent),
    ]
    client = server.test_client()
    reply = client.post("/api/sync/push", json=make_bundle(orphan, second).as_json())
    assert reply.status_code == 200, reply.json
    assert (reply.json["applied"], reply.json["parked"]) == (1, 2)
    assert list(server_records(server)) == [("Household", '["H5"]')]
    detail = producer_state(server, "tablet-2")
    assert detail["applied_through"] == 3 and detail["parked"] == 2
    reasons = [item["reason"] for item in detail["parked_transactions"]]
    assert "waits for its parent Household" in reasons[0]
    assert "waits for parked transaction 1" in reasons[1]

    household = [wire("tablet-1", 1, "Household", ["H1"], "insert", {"village": "M"})]
    reply = client.post("/api/sync/push", json=make_bundle(household, first).as_json())
    assert reply.json["applied"] == 3  # its own, then the two parked ones
    records = server_records(server)
    assert records[("Member", '["M9"]')] == {"name": "Ada L."}
    assert producer_state(server, "tablet-2")["parked"] == 0


def test_beat_applies_what_a_crash_left_received(server, make_field):
    credential, _ = register(server, "kiosk-1")
    transactions = [
        wire("kiosk-1", n, "Household", [f"H{n}"], "insert", {}) for n in (1, 2)
    ]
    with server.app_context():
        # Received and committed, then the process died before applying.
        bundle = verify_bundle(db.session, make_bundle(transactions, credential))
        receive(db.session, bundle, FIELD_MODELS)
        db.session.commit()
        assert server_records(server) == {}
        apply_pending.run()
        assert len(server_records(server)) == 2
        assert producer_state(server, "kiosk-1")["applied_through"] == 2


def test_a_background_apply_retries_what_waits_for_a_new_parent(server):
    first, _ = register(server, "tablet-1")
    second, _ = register(server, "tablet-2")
    parent = {"household_id": {"model": "Household", "natural_key": ["H1"]}}
    orphan = [wire("tablet-2", 1, "Member", ["M9"], "insert", {"n": 1}, parent)]
    client = server.test_client()
    client.post("/api/sync/push", json=make_bundle(orphan, second).as_json())
    household = [wire("tablet-1", 1, "Household", ["H1"], "insert", {})]
    with server.app_context():
        # The parent was received, then the process died before applying it.
        receive(
            db.session,
            verify_bundle(db.session, make_bundle(household, first)),
            FIELD_MODELS,
        )
        db.session.commit()
        apply_pending.run()
    assert set(server_records(server)) == {
        ("Household", '["H1"]'),
        ("Member", '["M9"]'),
    }
    assert producer_state(server, "tablet-2")["parked"] == 0

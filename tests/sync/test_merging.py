"""Field-level changes: a device that does not know a field never erases it."""

from __future__ import annotations

from sync.models import SyncRecord
from sync.wire.bundles import make_bundle, plain_transaction
from tests.sync.support import CREATED, register, server_records, wire
from tracker.extensions import db

PUSH = "/api/sync/push"
H1 = ("Household", '["H1"]')


def push(server, credential, *transactions):
    bundle = make_bundle(list(transactions), credential).as_json()
    answer = server.test_client().post(PUSH, json=bundle)
    assert answer.status_code == 200, answer.json
    return answer.json


def test_an_older_device_keeps_a_field_it_does_not_know(server):
    newer, older = register(server, "new-tablet")[0], register(server, "old-tablet")[0]
    push(
        server,
        newer,
        wire("new-tablet", 1, "Household", ["H1"], "insert", {"v": "A", "gps": "1,2"}),
    )
    push(
        server, older, wire("old-tablet", 1, "Household", ["H1"], "update", {"v": "B"})
    )
    assert server_records(server)[H1] == {"v": "B", "gps": "1,2"}


def test_a_field_sent_as_null_is_cleared_and_a_rename_keeps_the_rest(server):
    credential = register(server, "tablet-1")[0]
    first = wire("tablet-1", 1, "Household", ["H1"], "insert", {"v": "A", "gps": "1"})
    cleared = wire("tablet-1", 2, "Household", ["H1"], "update", {"gps": None})
    push(server, credential, first, cleared)
    assert server_records(server)[H1] == {"v": "A", "gps": None}
    # A rename's payload names the key the record had before.
    renamed = plain_transaction(
        "tablet-1",
        3,
        "Household",
        ["H2"],
        "update",
        {
            "schema_version": 1,
            "fields": {"code": "H2"},
            "parents": {},
            "previous_natural_key": ["H1"],
        },
        CREATED,
    )
    push(server, credential, renamed)
    assert server_records(server) == {
        ("Household", '["H2"]'): {"v": "A", "gps": None, "code": "H2"}
    }


def test_a_parent_a_device_does_not_know_is_kept_and_one_it_clears_goes(server):
    credential = register(server, "tablet-1")[0]
    parent = {"household_id": {"model": "Household", "natural_key": ["H1"]}}
    push(
        server,
        credential,
        wire("tablet-1", 1, "Household", ["H1"], "insert", {"v": "A"}),
        wire("tablet-1", 2, "Member", ["M1"], "insert", {"household_id": 1}, parent),
        wire("tablet-1", 3, "Member", ["M1"], "update", {"name": "Ada"}),
    )

    def parents():
        with server.app_context():
            return db.session.scalar(
                db.select(SyncRecord.parents).where(SyncRecord.model == "Member")
            )

    assert parents() == parent
    push(
        server,
        credential,
        wire("tablet-1", 4, "Member", ["M1"], "update", {"household_id": None}),
    )
    assert parents() == {}


def test_a_parent_renamed_is_named_anew_but_not_over_another_producers_choice(
    server,
):
    one, two = register(server, "tablet-1")[0], register(server, "tablet-2")[0]
    in_h1 = {"household_id": {"model": "Household", "natural_key": ["H1"]}}
    in_h1b = {"household_id": {"model": "Household", "natural_key": ["H1b"]}}
    in_h2 = {"household_id": {"model": "Household", "natural_key": ["H2"]}}
    push(
        server,
        one,
        wire("tablet-1", 1, "Household", ["H1"], "insert", {"code": "H1"}),
        wire("tablet-1", 2, "Household", ["H2"], "insert", {"code": "H2"}),
        wire("tablet-1", 3, "Member", ["M1"], "insert", {"household_id": 1}, in_h1),
        wire("tablet-1", 4, "Member", ["M2"], "insert", {"household_id": 1}, in_h1),
    )
    # tablet-2 moves M2 to H2; then tablet-1 renames H1 and edits both members.
    push(
        server,
        two,
        wire("tablet-2", 1, "Member", ["M2"], "update", {"household_id": 5}, in_h2),
    )
    renamed = plain_transaction(
        "tablet-1",
        5,
        "Household",
        ["H1b"],
        "update",
        {
            "schema_version": 1,
            "fields": {"code": "H1b"},
            "parents": {},
            "previous_natural_key": ["H1"],
        },
        CREATED,
    )
    push(
        server,
        one,
        renamed,
        wire("tablet-1", 6, "Member", ["M1"], "update", {"name": "A"}, in_h1b),
        wire("tablet-1", 7, "Member", ["M2"], "update", {"name": "B"}, in_h1b),
    )

    def parents(key):
        with server.app_context():
            return db.session.scalar(
                db.select(SyncRecord.parents).where(SyncRecord.natural_key == key)
            )

    assert parents('["M1"]') == in_h1b
    assert parents('["M2"]') == in_h2

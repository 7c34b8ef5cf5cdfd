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

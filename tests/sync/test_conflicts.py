"""Conflicts: one field changed concurrently by two producers is recorded with
both sides, the later applied change stays in the record, and someone resolves
it on the page or through the API."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from sync.client.transfer import HttpTransport, push_url, send_bundle
from sync.deliveries import DeliverySettings, apply_all
from sync.models import SyncConflict, SyncRecord
from sync.wire.bundles import make_bundle, plain_transaction
from tests.support import csrf_token
from tests.sync.support import CREATED, NO_WAIT, register, server_records, wire
from tracker.extensions import db

PUSH = "/api/sync/push"
H1 = ("Household", '["H1"]')
IN_H1 = {"household_id": {"model": "Household", "natural_key": ["H1"]}}
IN_H2 = {"household_id": {"model": "Household", "natural_key": ["H2"]}}


def push(server, credential, *transactions):
    bundle = make_bundle(list(transactions), credential).as_json()
    answer = server.test_client().post(PUSH, json=bundle)
    assert answer.status_code == 200, answer.json
    return answer.json


def conflicts(server) -> list[SyncConflict]:
    with server.app_context():
        found = db.session.scalars(select(SyncConflict).order_by(SyncConflict.id))
        rows = found.all()
        db.session.expunge_all()
        return rows


@pytest.fixture
def tablets(server):
    """Two field devices that both hold household H1."""
    one, two = register(server, "tablet-1")[0], register(server, "tablet-2")[0]
    push(
        server,
        one,
        wire("tablet-1", 1, "Household", ["H1"], "insert", {"village": "Maun"}),
    )
    return one, two


def test_a_concurrent_change_of_one_field_is_a_conflict_and_the_later_stays(
    server, tablets
):
    _, two = tablets
    # Made before tablet-1's household reached the server: it could not see it.
    made = CREATED + timedelta(hours=1)
    answer = push(
        server,
        two,
        wire(
            "tablet-2",
            1,
            "Household",
            ["H1"],
            "update",
            {"village": "Kanye", "size": 4},
            made=made,
        ),
    )
    assert answer["conflicts"] == 1 and "conflict" in answer["warnings"][0]
    assert server_records(server)[H1] == {"village": "Kanye", "size": 4}
    [conflict] = conflicts(server)
    assert (conflict.model, conflict.natural_key, conflict.field) == (
        "Household",
        '["H1"]',
        "village",
    )
    assert (conflict.applied_value, conflict.other_value) == ("Kanye", "Maun")
    assert (conflict.applied_sequence, conflict.other_sequence) == (1, 1)
    assert conflict.applied_made == made and conflict.other_made == CREATED
    assert conflict.other_applied < conflict.detected
    assert conflict.status == "open" and conflict.resolution is None


def test_changes_that_are_not_conflicts(server, tablets):
    one, two = tablets
    # The same producer again; the same value from another; another field.
    push(
        server,
        one,
        wire("tablet-1", 2, "Household", ["H1"], "update", {"village": "Gabane"}),
    )
    push(
        server,
        two,
        wire("tablet-2", 1, "Household", ["H1"], "update", {"village": "Gabane"}),
        wire("tablet-2", 2, "Household", ["H1"], "update", {"size": 3}),
    )
    # Made once tablet-2's value was on the server: a later edit, not a conflict.
    later = datetime.now(UTC) + timedelta(seconds=2)
    push(
        server,
        one,
        wire("tablet-1", 3, "Household", ["H1"], "update", {"size": 5}, made=later),
    )
    assert conflicts(server) == []
    assert server_records(server)[H1] == {"village": "Gabane", "size": 5}


def test_arrival_order_does_not_matter_the_later_applied_wins(server):
    one, two = register(server, "tablet-1")[0], register(server, "tablet-2")[0]
    push(server, one, wire("tablet-1", 1, "Household", ["H1"], "insert", {"v": 1}))
    # tablet-2 made its change first, but it arrives last.
    early = CREATED - timedelta(days=3)
    push(
        server,
        two,
        wire("tablet-2", 1, "Household", ["H1"], "update", {"v": 2}, made=early),
    )
    [conflict] = conflicts(server)
    assert (conflict.applied_value, conflict.other_value) == (2, 1)
    assert server_records(server)[H1] == {"v": 2}


def test_a_parent_is_compared_by_its_natural_key_and_local_ids_never_conflict(
    server,
):
    one, two = register(server, "tablet-1")[0], register(server, "tablet-2")[0]
    households = [
        wire("tablet-1", n, "Household", [code], "insert", {"code": code})
        for n, code in ((1, "H1"), (2, "H2"))
    ]
    member = wire("tablet-1", 3, "Member", ["M1"], "insert", {"household_id": 1}, IN_H1)
    push(server, one, *households, member)
    # tablet-2 knows H1 by its own local id 7: the same parent, no conflict; its
    # own insert of M1 has another local id, which the payload says is local.
    same = wire("tablet-2", 1, "Member", ["M1"], "update", {"household_id": 7}, IN_H1)
    payload = {
        "schema_version": 1,
        "fields": {"id": 9, "name": "Ada"},
        "parents": {},
        "local_fields": ["id"],
    }
    local = plain_transaction(
        "tablet-2", 2, "Member", ["M1"], "insert", payload, CREATED
    )
    push(server, two, same, local)
    assert conflicts(server) == []
    # tablet-1 had moved M1 to H2 meanwhile: its household differs by natural key.
    moved = wire("tablet-1", 4, "Member", ["M1"], "update", {"household_id": 2}, IN_H2)
    push(server, one, moved)
    [conflict] = conflicts(server)
    assert conflict.field == "household_id"
    assert (conflict.applied_value, conflict.other_value) == (2, 7)
    assert (conflict.applied_parent, conflict.other_parent) == (
        IN_H2["household_id"],
        IN_H1["household_id"],
    )


@pytest.fixture
def conflicted(server, tablets):
    """H1's village and size each changed concurrently by both tablets."""
    one, two = tablets
    push(
        server,
        one,
        wire("tablet-1", 2, "Household", ["H1"], "update", {"size": 3}),
    )
    push(
        server,
        two,
        wire(
            "tablet-2",
            1,
            "Household",
            ["H1"],
            "update",
            {"village": "Kanye", "size": 4},
        ),
    )
    return [conflict.id for conflict in conflicts(server)]


def record(server, key=H1) -> SyncRecord:
    with server.app_context():
        found = db.session.scalar(
            select(SyncRecord).where(
                SyncRecord.model == key[0], SyncRecord.natural_key == key[1]
            )
        )
        db.session.expunge_all()
        return found


def other_row(server, item) -> int:
    """The producer row id of a conflict's other side."""
    with server.app_context():
        return db.session.get(SyncConflict, item["id"]).other_producer_id


def resolve(client, conflict_id, headers, **body):
    return client.post(
        f"/api/sync/conflicts/{conflict_id}/resolve", json=body, headers=headers
    )


def test_the_api_lists_filters_and_resolves(server, conflicted, auth_headers):
    client = server.test_client()
    assert client.get("/api/sync/conflicts").status_code == 401
    listed = client.get("/api/sync/conflicts", headers=auth_headers).json
    assert listed["total"] == 2 and listed["pages"] == 1
    village = next(item for item in listed["items"] if item["field"] == "village")
    assert village["natural_key"] == ["H1"] and village["model"] == "Household"
    assert village["applied"]["value"] == "Kanye"
    assert village["applied"]["producer"] == "tablet-2"
    assert village["other"]["value"] == "Maun"
    assert village["other"]["producer"] == "tablet-1"
    assert village["other"]["made"] == CREATED.isoformat()
    assert village["status"] == "open"
    for query, total in (
        ("model=Member", 0),
        ("producer=tablet-2", 2),
        ("status=resolved", 0),
        ("status=all&model=Household", 2),
    ):
        answer = client.get(f"/api/sync/conflicts?{query}", headers=auth_headers)
        assert answer.json["total"] == total, query
    summaries = client.get("/api/sync/producers", headers=auth_headers).json
    assert [row["conflicts"] for row in summaries["items"]] == [2, 2]

    size = next(item for item in listed["items"] if item["field"] == "size")
    before = record(server)
    answer = resolve(client, size["id"], auth_headers, action="take_other")
    assert answer.status_code == 200, answer.json
    assert answer.json["status"] == "resolved"
    assert answer.json["resolution"] == "take_other"
    assert answer.json["resolved_by"] == "ada"
    after = record(server)
    assert after.fields == {"village": "Kanye", "size": 3}
    assert after.updated > before.updated and after.version == before.version
    # The record's last change is now the other side's.
    assert (after.producer_id, after.sequence) == (
        size["other"]["producer"] and other_row(server, size),
        size["other"]["sequence"],
    )
    again = resolve(client, size["id"], auth_headers, action="keep_applied")
    assert again.status_code == 409 and "already resolved" in again.json["message"]

    assert (
        resolve(client, village["id"], auth_headers, action="keep_applied").json[
            "resolution"
        ]
        == "keep_applied"
    )
    assert record(server).fields == {"village": "Kanye", "size": 3}
    remaining = client.get("/api/sync/conflicts", headers=auth_headers).json
    assert remaining["total"] == 0
    summaries = client.get("/api/sync/producers", headers=auth_headers).json
    assert [row["conflicts"] for row in summaries["items"]] == [0, 0]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"action": "delete"}, 400, "action"),
        ({}, 400, "action"),
        ({"action": "keep_applied", "note": "x"}, 400, None),
    ],
)
def test_bad_resolutions_name_the_field(
    server, conflicted, auth_headers, body, status, field
):
    answer = resolve(server.test_client(), conflicted[0], auth_headers, **body)
    assert answer.status_code == status, answer.json
    if field:
        assert answer.json["field"] == field


def test_unknown_conflicts_and_producers_are_404s(server, conflicted, auth_headers):
    client = server.test_client()
    assert (
        resolve(client, 999999, auth_headers, action="keep_applied").status_code == 404
    )
    answer = client.get("/api/sync/conflicts?producer=nobody", headers=auth_headers)
    assert answer.status_code == 404
    answer = client.get("/api/sync/conflicts?status=closed", headers=auth_headers)
    assert answer.status_code == 400 and answer.json["field"] == "status"


def test_the_other_value_is_refused_once_the_field_changed_again(
    server, conflicted, auth_headers, tablets
):
    one, _ = tablets
    later = datetime.now(UTC) + timedelta(seconds=2)
    push(
        server,
        one,
        wire("tablet-1", 3, "Household", ["H1"], "update", {"size": 9}, made=later),
    )
    client = server.test_client()
    size = next(c for c in conflicts(server) if c.field == "size")
    answer = resolve(client, size.id, auth_headers, action="take_other")
    assert answer.status_code == 409 and "changed again" in answer.json["message"]
    assert record(server).fields["size"] == 9
    assert (
        resolve(client, size.id, auth_headers, action="mark_resolved").status_code
        == 200
    )


def test_the_page_lists_filters_and_resolves(server, conflicted, signed_in):
    page = signed_in.get("/sync").get_data(as_text=True)
    assert "2 open conflicts" in page and 'href="/sync/conflicts"' in page
    assert 'href="/sync/conflicts"' in signed_in.get("/sync/records").get_data(
        as_text=True
    )
    listed = signed_in.get("/sync/conflicts").get_data(as_text=True)
    assert listed.count('data-conflict="') == 2 and "Kanye" in listed
    filtered = signed_in.get("/sync/conflicts?model=Member").get_data(as_text=True)
    assert "No conflict matches." in filtered
    assert signed_in.get("/sync/conflicts?producer=nobody").status_code == 404
    size = next(c for c in conflicts(server) if c.field == "size")
    answer = signed_in.post(
        f"/sync/conflicts/{size.id}/resolve",
        data={
            "csrf_token": csrf_token(signed_in, "/sync/conflicts"),
            "action": "take_other",
            "producer": "tablet-1",
            "status": "open",
        },
    )
    assert answer.status_code == 302
    assert answer.headers["Location"].endswith(
        "/sync/conflicts?producer=tablet-1&status=open"
    )
    shown = signed_in.get(answer.headers["Location"]).get_data(as_text=True)
    assert "the other value is now in the record" in shown
    assert record(server).fields["size"] == 3
    resolved = signed_in.get("/sync/conflicts?status=resolved").get_data(as_text=True)
    assert "took the other value" in resolved and "ada" in resolved


def test_the_page_and_its_actions_need_a_sign_in(server, conflicted):
    client = server.test_client()
    assert client.get("/sync/conflicts").status_code == 302
    answer = client.post(
        f"/sync/conflicts/{conflicted[0]}/resolve", data={"action": "keep_applied"}
    )
    assert answer.status_code in (302, 400)
    assert conflicts(server)[0].status == "open"


def test_sync_status_counts_open_conflicts(server, conflicted):
    result = server.test_cli_runner().invoke(args=["sync", "status"])
    assert result.exit_code == 0, result.output
    assert "confl." in result.output
    rows = [line.split() for line in result.output.splitlines()]
    counts = {row[0]: row[9] for row in rows if row and row[0].startswith("tablet")}
    assert counts == {"tablet-1": "2", "tablet-2": "2"}
    assert "2 open conflicts" in result.output


def test_two_producers_applying_to_the_same_records_at_once_lose_nothing(
    server, server_url
):
    """Each run holds the rows it writes (PostgreSQL) or the database (SQLite):
    the two producers' updates of the same records, pushed at the same moment
    over HTTP, are all applied, none over another's."""
    one, two = register(server, "tablet-1")[0], register(server, "tablet-2")[0]
    codes = [f"H{n}" for n in range(20)]
    push(
        server,
        one,
        *(
            wire("tablet-1", n + 1, "Household", [code], "insert", {"code": code})
            for n, code in enumerate(codes)
        ),
    )
    rounds = 10

    def bundles(producer, credential, f, first):
        """ROUNDS bundles, each changing every record's field by ``f``."""
        return [
            make_bundle(
                [
                    wire(producer, first + r * 20 + n, "Household", [c], "update", f(r))
                    for n, c in enumerate(codes)
                ],
                credential,
            )
            for r in range(rounds)
        ]

    work = {
        "tablet-1": bundles("tablet-1", one, lambda r: {"a": r}, 21),
        "tablet-2": bundles("tablet-2", two, lambda r: {"b": r}, 1),
    }
    start = threading.Barrier(2)
    failures = []

    def send(producer):
        transport = HttpTransport(timeout=120)
        start.wait()
        try:
            for bundle in work[producer]:
                send_bundle(transport, push_url(server_url), bundle, NO_WAIT)
        except Exception as exc:  # reported below, with the producer
            failures.append(f"{producer}: {exc}")

    threads = [threading.Thread(target=send, args=(p,)) for p in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with server.app_context():
        settings = DeliverySettings.from_config(server.config)
        apply_all(db.session, settings, db.session.commit)  # whatever a retry left
        records = db.session.scalars(select(SyncRecord)).all()
        assert {r.natural_key: r.version for r in records} == {
            f'["{code}"]': 1 + 2 * rounds for code in codes
        }
        assert all(
            r.fields == {"code": r.fields["code"], "a": 9, "b": 9} for r in records
        )
    assert conflicts(server) == []


def test_an_update_of_a_record_another_producer_deleted_is_a_conflict(
    server, tablets, auth_headers
):
    one, two = tablets
    push(server, one, wire("tablet-1", 2, "Household", ["H1"], "delete", {}))
    # tablet-2 never learnt of the delete and changes one field.
    made = CREATED + timedelta(hours=2)
    answer = push(
        server,
        two,
        wire("tablet-2", 1, "Household", ["H1"], "update", {"size": 4}, made=made),
    )
    assert answer["conflicts"] == 1
    # Not brought back as a partial record.
    assert H1 not in server_records(server)
    [conflict] = conflicts(server)
    assert conflict.kind == "deleted" and conflict.status == "open"
    assert (conflict.model, conflict.natural_key) == H1
    assert (conflict.applied_sequence, conflict.other_sequence) == (2, 1)
    assert conflict.other_value == {"size": 4} and conflict.other_made == made
    client = server.test_client()
    [item] = client.get("/api/sync/conflicts", headers=auth_headers).json["items"]
    assert item["kind"] == "deleted"
    assert item["applied"]["producer"] == "tablet-1"
    assert item["other"]["producer"] == "tablet-2"
    # Restore with the update: the record as it was deleted, plus the change.
    answer = resolve(client, conflict.id, auth_headers, action="take_other")
    assert answer.status_code == 200, answer.json
    assert server_records(server)[H1] == {"village": "Maun", "size": 4}
    with server.app_context():
        record = db.session.scalar(
            select(SyncRecord).where(SyncRecord.natural_key == '["H1"]')
        )
        assert record.deleted is None and record.sequence == 1
        assert record.producer_id == conflict.other_producer_id


def test_keeping_the_delete_of_a_record_leaves_it_deleted(
    server, tablets, auth_headers
):
    one, two = tablets
    push(server, one, wire("tablet-1", 2, "Household", ["H1"], "delete", {}))
    push(server, two, wire("tablet-2", 1, "Household", ["H1"], "update", {"size": 4}))
    [conflict] = conflicts(server)
    client = server.test_client()
    answer = resolve(client, conflict.id, auth_headers, action="keep_applied")
    assert answer.status_code == 200, answer.json
    assert H1 not in server_records(server)
    # A new insert of the same key is a new record, not a conflict.
    push(server, two, wire("tablet-2", 2, "Household", ["H1"], "insert", {"v": 1}))
    assert server_records(server)[H1] == {"v": 1}
    assert len(conflicts(server)) == 1


def test_restoring_a_deleted_record_brings_the_producer_s_later_updates_too(
    server, tablets, auth_headers
):
    one, two = tablets
    push(server, one, wire("tablet-1", 2, "Household", ["H1"], "delete", {}))
    # tablet-2 missed the delete and changes the village three times.
    for sequence, village in ((1, "G2"), (2, "G3"), (3, "G4")):
        update = {"village": village, f"step{sequence}": sequence}
        push(
            server,
            two,
            wire("tablet-2", sequence, "Household", ["H1"], "update", update),
        )
    first, second, third = conflicts(server)
    assert {c.kind for c in (first, second, third)} == {"deleted"}
    client = server.test_client()
    answer = resolve(client, first.id, auth_headers, action="take_other")
    assert answer.status_code == 200, answer.json
    assert server_records(server)[H1] == {
        "village": "G4",
        "step1": 1,
        "step2": 2,
        "step3": 3,
    }
    with server.app_context():
        record = db.session.scalar(
            select(SyncRecord).where(SyncRecord.natural_key == '["H1"]')
        )
        assert record.sequence == 3 and record.changes["village"][1] == 3
    assert [(c.status, c.resolution) for c in conflicts(server)] == [
        ("resolved", "take_other")
    ] * 3


def test_a_delete_conflict_is_told_truthfully(server, tablets, auth_headers):
    one, two = tablets
    push(server, one, wire("tablet-1", 2, "Household", ["H1"], "delete", {}))
    with server.app_context():
        deleted_at = db.session.scalar(
            select(SyncRecord.deleted).where(SyncRecord.natural_key == '["H1"]')
        )
    answer = push(
        server, two, wire("tablet-2", 1, "Household", ["H1"], "update", {"size": 4})
    )
    [warning] = [
        w for w in answer["warnings"] if "conflict" in w.lower() or "deleted" in w
    ]
    assert "were applied" not in warning and "not applied" in warning
    assert "deleted" in warning
    client = server.test_client()
    [item] = client.get("/api/sync/conflicts", headers=auth_headers).json["items"]
    # The delete was applied when it arrived; the update was not applied.
    assert item["applied"]["applied"] == deleted_at.isoformat()
    assert item["applied"]["applied"] != item["detected"]
    assert item["other"]["applied"] is None
    resolve(client, item["id"], auth_headers, action="take_other")
    [item] = client.get("/api/sync/conflicts?status=all", headers=auth_headers).json[
        "items"
    ]
    assert item["other"]["applied"] == item["resolved"]

"""The sync API: bad pushes get a 4xx naming the field and store nothing;
admins register producers, follow them and upload files."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from sync.models import IncomingTransaction, RejectedTransaction
from sync.wire.bundles import make_bundle
from tests.sync.support import producer_state, register, server_records, wire

PUSH = "/api/sync/push"


def bundle_of(credential, *transactions):
    return make_bundle(list(transactions), credential).as_json()


def stored(server) -> int:
    from tracker.extensions import db

    with server.app_context():
        return db.session.scalar(select(func.count(IncomingTransaction.id)))


@pytest.fixture
def credential(server):
    return register(server, "tablet-1")[0]


def household(sequence, code="H1", village="Mochudi", producer="tablet-1"):
    return wire(producer, sequence, "Household", [code], "insert", {"v": village})


@pytest.mark.parametrize(
    ("mutate", "status", "field"),
    [
        (lambda body: body.pop("signature"), 403, "signature"),
        (lambda body: body.update(extra=1), 400, "extra"),
        (lambda body: body.update(transactions="many"), 400, "transactions"),
        (lambda body: body["manifest"].update(format="v0"), 400, "manifest.format"),
        (
            lambda body: body["transactions"][1].update(sequence="2"),
            400,
            "transactions[1].sequence",
        ),
        (
            lambda body: body["transactions"][0].update(action="upsert"),
            400,
            "transactions[0].action",
        ),
        (
            lambda body: body["transactions"][0].update(natural_key=[]),
            400,
            "transactions[0].natural_key",
        ),
        (
            lambda body: body["transactions"][0]["natural_key"].append("x" * 600),
            400,
            "transactions[0].natural_key",
        ),
        (lambda body: body["transactions"].pop(), 400, "transactions"),
        (
            lambda body: body["transactions"][0].update(payload='{"fields":{}}'),
            400,
            "manifest.sha256",
        ),
        (
            lambda body: body["manifest"].update(producer="tablet-2"),
            400,
            "transactions[0].producer",
        ),
    ],
)
def test_malformed_or_forged_batches_are_refused_whole(
    server, credential, mutate, status, field
):
    register(server, "tablet-2")
    body = bundle_of(credential, household(1), household(2, "H2"))
    mutate(body)
    reply = server.test_client().post(PUSH, json=body)
    assert reply.status_code == status, reply.json
    if field:
        assert reply.json["field"] == field
    assert reply.json["message"]
    assert stored(server) == 0


@pytest.mark.parametrize(
    ("producer", "field"), [("tablet-2", "signature"), ("ghost", "manifest.producer")]
)
def test_one_producer_cannot_send_as_another(server, credential, producer, field):
    register(server, "tablet-2")
    posing = bundle_of(credential, household(1, producer=producer))
    reply = server.test_client().post(PUSH, json=posing)
    assert reply.status_code == 403 and reply.json["field"] == field
    assert stored(server) == 0


def test_non_json_and_oversized_pushes_are_4xx(make_app, credential, server):
    client = server.test_client()
    reply = client.post(PUSH, data=b"{nope", content_type="application/json")
    assert reply.status_code == 400 and reply.json["field"] == "body"
    small = make_app(SYNC_MODELS=["Household"], SYNC_MAX_BATCH=1)
    reply = small.test_client().post(
        PUSH, json=bundle_of(credential, household(1), household(2, "H2"))
    )
    assert reply.status_code == 413 and reply.json["field"] == "transactions"


def test_same_sequence_with_another_hash_is_rejected_and_kept(server, credential):
    client = server.test_client()
    client.post(PUSH, json=bundle_of(credential, household(1)))
    reply = client.post(PUSH, json=bundle_of(credential, household(1, village="X")))
    assert reply.status_code == 200
    assert reply.json["duplicates"] == 0 and len(reply.json["rejected"]) == 1
    assert "different hash" in reply.json["rejected"][0]["reason"]
    assert server_records(server)[("Household", '["H1"]')] == {"v": "Mochudi"}
    state = producer_state(server, "tablet-1")
    assert state["rejected"] == 1
    assert state["rejected_transactions"][0]["sequence"] == 1
    again = client.post(PUSH, json=bundle_of(credential, household(1, village="X")))
    assert again.json["rejected"]  # still refused, but kept only once
    from tracker.extensions import db

    with server.app_context():
        assert db.session.scalar(select(func.count(RejectedTransaction.id))) == 1


def test_a_payload_not_matching_its_hash_is_quarantined_in_order(server, credential):
    bad = household(2, "H2")
    bad["hash"] = "0" * 64
    reply = server.test_client().post(
        PUSH, json=bundle_of(credential, household(1), bad, household(3, "H3"))
    )
    assert reply.json["quarantined"] == [
        {"sequence": 2, "reason": "the payload does not match the transaction's hash"}
    ]
    assert reply.json["applied_through"] == 3
    assert set(server_records(server)) == {
        ("Household", '["H1"]'),
        ("Household", '["H3"]'),
    }


def test_admin_registers_lists_and_disables_producers(server, auth_headers):
    client = server.test_client()
    assert client.get("/api/sync/producers").status_code == 401
    created = client.post(
        "/api/sync/producers",
        json={"producer_id": "clinic-4", "encrypt": True},
        headers=auth_headers,
    )
    assert created.status_code == 201
    assert created.json["credential"] and created.json["encryption_key"]
    bad = client.post(
        "/api/sync/producers", json={"producer_id": "no spaces"}, headers=auth_headers
    )
    assert bad.status_code == 400 and bad.json["field"] == "producer_id"
    twice = client.post(
        "/api/sync/producers", json={"producer_id": "clinic-4"}, headers=auth_headers
    )
    assert twice.status_code == 400 and "already registered" in twice.json["message"]
    listed = client.get("/api/sync/producers", headers=auth_headers).json["items"]
    assert [item["producer_id"] for item in listed] == ["clinic-4"]
    assert "credential" not in listed[0]

    off = client.post(
        "/api/sync/producers/clinic-4/active?active=false", headers=auth_headers
    )
    assert off.json["active"] is False
    reply = client.post(
        PUSH,
        json=bundle_of(created.json["credential"], household(1, producer="clinic-4")),
    )
    assert reply.status_code == 403 and "disabled" in reply.json["message"]
    missing = client.get("/api/sync/producers/nobody", headers=auth_headers)
    assert missing.status_code == 404


def test_admin_uploads_a_carried_file(server, credential, auth_headers, tmp_path):
    from sync.wire.bundles import write_bundle_file

    path = tmp_path / "carried.jsonl.gz"
    with open(path, "wb") as stream:
        write_bundle_file(make_bundle([household(1)], credential), stream)
    client = server.test_client()
    url = "/api/sync/files?name=carried.jsonl.gz"
    reply = client.post(url, data=path.read_bytes(), headers=auth_headers)
    assert reply.status_code == 200 and reply.json["applied"] == 1
    again = client.post(url, data=path.read_bytes(), headers=auth_headers)
    assert again.json["already_imported"] is True
    cut = client.post(url, data=path.read_bytes()[:-9], headers=auth_headers)
    assert cut.status_code == 400 and "truncated" in cut.json["message"]


def test_a_registered_producer_is_answered_with_its_location(server, auth_headers):
    client = server.test_client()
    created = client.post(
        "/api/sync/producers", json={"producer_id": "clinic-5"}, headers=auth_headers
    )
    assert created.status_code == 201
    shown = client.get(created.headers["Location"], headers=auth_headers)
    assert shown.status_code == 200 and shown.json["producer_id"] == "clinic-5"


def test_a_registration_with_an_unknown_key_is_refused_naming_it(server, auth_headers):
    reply = server.test_client().post(
        "/api/sync/producers",
        json={"producer_id": "clinic-6", "colour": "red"},
        headers=auth_headers,
    )
    assert reply.status_code == 400
    assert (reply.json["error"], reply.json["field"]) == ("Unexpected data", "colour")


def test_an_oversized_file_upload_is_413_naming_the_body(server, auth_headers):
    server.config["SYNC_MAX_BODY_BYTES"] = 1024
    reply = server.test_client().post(
        "/api/sync/files", data=b"x" * 2048, headers=auth_headers
    )
    assert reply.status_code == 413 and reply.json["field"] == "body"


@pytest.mark.parametrize(
    ("query", "body"),
    [
        ("?active=1", None),
        ("?active=yes", None),
        ("?active=false", {"active": True}),
        ("", {"active": 1}),
        ("", None),
    ],
)
def test_active_takes_true_or_false_once(server, auth_headers, query, body):
    client = server.test_client()
    client.post(
        "/api/sync/producers", json={"producer_id": "clinic-4"}, headers=auth_headers
    )
    answer = client.post(
        f"/api/sync/producers/clinic-4/active{query}",
        headers=auth_headers,
        **({"json": body} if body is not None else {}),
    )
    assert answer.status_code == 400, answer.json
    assert answer.json["field"] == "active"
    detail = client.get("/api/sync/producers/clinic-4", headers=auth_headers).json
    assert detail["active"] is True
    # Both saying the same is no conflict.
    same = client.post(
        "/api/sync/producers/clinic-4/active?active=false",
        json={"active": False},
        headers=auth_headers,
    )
    assert same.status_code == 200 and same.json["active"] is False

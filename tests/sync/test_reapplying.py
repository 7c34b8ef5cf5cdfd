"""Nothing lost to configuration: a model off SYNC_MODELS is held, loudly, and
applied once it is listed; quarantined transactions are re-applied once their
cause is fixed, from the command, the page and the API."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sync.deliveries import DeliverySettings, apply_all
from sync.models import HELD, IncomingTransaction, SyncProducer, SyncRecord
from sync.wire.bundles import make_bundle
from tests.support import Login, csrf_token
from tests.sync.support import FIELD_MODELS, register, server_records, wire
from tracker.extensions import db

PUSH = "/api/sync/push"


@pytest.fixture
def app(make_app):
    """A server that lists Household only."""
    return make_app(SYNC_MODELS=["Household"])


@pytest.fixture
def credential(app):
    return register(app, "tablet-1")[0]


def household_and_member(sequence=1, code="H1"):
    return [
        wire("tablet-1", sequence, "Household", [code], "insert", {"code": code}),
        wire(
            "tablet-1",
            sequence + 1,
            "Member",
            [f"{code}-1"],
            "insert",
            {"identifier": f"{code}-1"},
            {"household_id": {"model": "Household", "natural_key": [code]}},
        ),
    ]


def push(app, credential, transactions):
    bundle = make_bundle(transactions, credential).as_json()
    return app.test_client().post(PUSH, json=bundle)


def statuses(app) -> dict[int, str]:
    with app.app_context():
        return dict(
            db.session.execute(
                select(IncomingTransaction.sequence, IncomingTransaction.status)
            ).all()
        )


def test_a_model_off_the_list_is_held_and_the_push_says_so(app, credential):
    reply = push(app, credential, household_and_member()).json
    assert reply["held"] == [
        {
            "sequence": 2,
            "reason": "model 'Member' is not on SYNC_MODELS: held, and applied"
            " once it is listed",
        }
    ]
    assert reply["quarantined"] == []
    assert "1 transactions were held, not applied" in reply["warnings"][0]
    assert "SYNC_MODELS (which lists Household)" in reply["warnings"][0]
    assert statuses(app) == {1: "applied", 2: HELD}


def test_held_transactions_are_applied_by_the_periodic_apply_once_listed(
    app, credential, make_app
):
    push(app, credential, household_and_member())
    assert list(server_records(app)) == [("Household", '["H1"]')]
    listed = make_app(SYNC_MODELS=FIELD_MODELS)
    with listed.app_context():
        settings = DeliverySettings.from_config(listed.config)
        totals = apply_all(db.session, settings, db.session.commit)
        assert totals.unparked == 1
        # Once applied, there is nothing more to do.
        assert apply_all(db.session, settings, db.session.commit) is None
    assert set(server_records(listed)) == {
        ("Household", '["H1"]'),
        ("Member", '["H1-1"]'),
    }


def test_a_held_record_keeps_the_order_of_its_changes(app, credential, make_app):
    member = {"household_id": {"model": "Household", "natural_key": ["H1"]}}
    push(
        app,
        credential,
        [
            *household_and_member(),
            wire("tablet-1", 3, "Member", ["H1-1"], "update", {"name": "B"}, member),
        ],
    )
    listed = make_app(SYNC_MODELS=FIELD_MODELS)
    result = listed.test_cli_runner().invoke(args=["sync", "reapply"])
    assert result.exit_code == 0, result.output
    assert "Re-applied 2: 2 applied, 0 parked; still held 0" in result.output
    assert server_records(listed)[("Member", '["H1-1"]')]["name"] == "B"


def test_a_held_transaction_past_a_gap_is_applied_once_in_its_turn(
    app, credential, make_app
):
    later = household_and_member(sequence=2)  # sequence 1 has not arrived
    push(app, credential, later)
    listed = make_app(SYNC_MODELS=FIELD_MODELS)
    result = listed.test_cli_runner().invoke(args=["sync", "reapply"])
    assert "Re-applied 0:" in result.output and "still held 1" in result.output
    assert statuses(listed) == {2: "received", 3: HELD}
    push(listed, credential, [wire("tablet-1", 1, "Household", ["H0"], "insert", {})])
    with listed.app_context():
        settings = DeliverySettings.from_config(listed.config)
        apply_all(db.session, settings, db.session.commit)
        assert apply_all(db.session, settings, db.session.commit) is None
        versions = list(db.session.scalars(select(SyncRecord.version)))
    assert statuses(listed) == {1: "applied", 2: "applied", 3: "applied"}
    assert versions == [1, 1, 1]


def test_reapply_command_filters_by_producer_and_model_and_warns(app, credential):
    push(app, credential, household_and_member())
    runner = app.test_cli_runner()
    result = runner.invoke(args=["sync", "reapply", "--model", "Member"])
    assert result.exit_code == 0
    assert "Re-applied 0: 0 applied, 0 parked; still held 1" in result.output
    assert "warning: 1 transactions were held" in result.output
    status = runner.invoke(args=["sync", "status"])
    assert "held" in status.output.splitlines()[0]
    assert "warning: 1 transactions were held" in status.output


def test_status_warns_when_nothing_is_listed(make_app):
    empty = make_app(SYNC_MODELS=[])
    result = empty.test_cli_runner().invoke(args=["sync", "status"])
    assert "warning: SYNC_MODELS is empty: every transaction is held" in (result.output)


def test_a_quarantined_transaction_is_reapplied_once_its_key_is_registered(
    make_app, make_field
):
    from tests.sync.field_app import Household, field_db

    server = make_app(SYNC_MODELS=FIELD_MODELS)
    field = make_field(server, "laptop-1", encrypt=True)
    with server.app_context():
        producer = db.session.scalar(select(SyncProducer))
        key, producer.encryption_key = producer.encryption_key, None
        db.session.commit()
    with field.app_context():
        field_db.session.add(Household(code="H9", village="Kanye"))
        field_db.session.commit()
        from sync.client.transfer import push as client_push
        from tests.sync.field_app import OutgoingTransaction, ProducerState
        from tests.sync.support import NO_WAIT, AppTransport

        summary = client_push(
            field_db.session,
            OutgoingTransaction,
            ProducerState,
            "http://server/api/sync/push",
            AppTransport(server),
            retry=NO_WAIT,
        )
        field_db.session.remove()
    assert summary.quarantined == 1
    assert server_records(server) == {}
    runner = server.test_cli_runner()
    result = runner.invoke(args=["sync", "reapply"])
    assert "still quarantined 1" in result.output
    with server.app_context():
        db.session.scalar(select(SyncProducer)).encryption_key = key
        db.session.commit()
    result = runner.invoke(args=["sync", "reapply"])
    assert "Re-applied 1: 1 applied" in result.output
    assert server_records(server)[("Household", '["H9"]')]["village"] == "Kanye"


def test_the_page_warns_and_its_button_reapplies(app, credential, signed_in):
    push(app, credential, household_and_member())
    page = signed_in.get("/sync").get_data(as_text=True)
    assert 'id="set-aside"' in page
    assert "1 transactions are held" in page
    token = csrf_token(signed_in, "/sync")
    answer = signed_in.post(
        "/sync/reapply", data={"csrf_token": token}, follow_redirects=True
    )
    assert "still held 1" in answer.get_data(as_text=True)


def test_the_page_warns_when_nothing_is_listed(make_app, user, login):
    empty = make_app(SYNC_MODELS=[])
    client = empty.test_client()
    Login(client)()
    page = client.get("/sync").get_data(as_text=True)
    assert 'id="no-models"' in page


def test_admin_api_reapplies(app, credential, auth_headers, make_app):
    push(app, credential, household_and_member())
    client = app.test_client()
    assert client.post("/api/sync/reapply").status_code == 401
    missing = client.post("/api/sync/reapply?producer=nobody", headers=auth_headers)
    assert missing.status_code == 404
    listed = make_app(SYNC_MODELS=FIELD_MODELS)
    answer = listed.test_client().post(
        "/api/sync/reapply?producer=tablet-1&model=Member", headers=auth_headers
    )
    assert answer.status_code == 200
    assert answer.json == {
        "released": 1,
        "applied": 1,
        "parked": 0,
        "still_held": 0,
        "still_quarantined": 0,
    }


def test_reapply_refuses_an_unknown_producer_and_wrong_types(app, auth_headers):
    result = app.test_cli_runner().invoke(
        args=["sync", "reapply", "--producer", "nope"]
    )
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert "no producer 'nope'" in line
    client = app.test_client()
    for body, field in (
        ({"model": 5}, "model"),
        ({"producer": ["a"]}, "producer"),
        ({"held_only": "yes"}, "held_only"),
        ({"models": "Member"}, "models"),
    ):
        answer = client.post("/api/sync/reapply", json=body, headers=auth_headers)
        assert answer.status_code == 400, body
        assert answer.json["field"] == field
    missing = client.post(
        "/api/sync/reapply", json={"producer": "nobody"}, headers=auth_headers
    )
    assert missing.status_code == 404
    fine = client.post(
        "/api/sync/reapply", json={"model": "Member"}, headers=auth_headers
    )
    assert fine.status_code == 200 and fine.json["released"] == 0


def test_status_counts_applied_apart_from_held(app, credential):
    push(app, credential, household_and_member())
    output = app.test_cli_runner().invoke(args=["sync", "status"]).output
    header, row = output.splitlines()[:2]
    columns = dict(zip(header.split()[:8], row.split()[:8], strict=True))
    assert (columns["received"], columns["applied"], columns["held"]) == (
        "2",
        "1",
        "1",
    )


def test_the_push_command_totals_what_was_held_across_bundles(make_app, make_field):
    from tests.support import serve
    from tests.sync.field_app import Household, field_db

    server = make_app(SYNC_MODELS=["Member"])
    field = make_field(server, "tablet-1")
    with field.app_context():
        for number in range(6):
            field_db.session.add(Household(code=f"H{number}", village="Maun"))
        field_db.session.commit()
        field_db.session.remove()
    with serve(server) as url:
        result = field.test_cli_runner().invoke(
            args=["sync", "push", url, "--batch-size", "2"]
        )
    assert result.exit_code == 0, result.output
    # Three bundles of two held each: the total, why, and one warning of it.
    assert "held by the server: 6 transactions (taken, not applied)" in result.output
    assert "model 'Household' is not on SYNC_MODELS" in result.output
    assert "warning: 6 transactions were held, not applied" in result.output
    assert "warning: 2 transactions" not in result.output


@pytest.mark.slow
def test_a_worker_s_start_says_what_is_held_and_how_to_apply_it(
    make_app, database_url, tmp_path
):
    from tests.celery_processes import celery_environment, start_worker
    from tests.services import start_redis

    redis = start_redis()
    settings = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "CELERY_BROKER_URL": redis.url,
        "SECRET_KEY": "sync-held-tests-secret-of-32-bytes-or-more",
        "SYNC_MODELS": ["Household"],
    }
    app = make_app(**settings)
    credential = register(app, "tablet-1")[0]
    assert push(app, credential, household_and_member()).status_code == 200
    env = celery_environment(settings, tmp_path / "instance")
    worker = None
    try:
        worker = start_worker(env, tmp_path / "worker.log", concurrency=1)
        worker.wait_for("1 transactions are held")
        log = worker.output()
        assert "Member" in log and "SYNC_MODELS" in log
        assert "manage.py sync reapply" in log
    finally:
        if worker is not None:
            worker.stop()
        redis.stop()

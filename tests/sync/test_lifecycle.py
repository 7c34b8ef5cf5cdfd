"""A reinstalled device continues: its producer gets a new credential with its
history kept, and the device learns from the server where to continue, so it
never reuses a sequence. Pushed over real HTTP on loopback."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from sync.client.transfer import Retry, TransferError, push, push_url
from sync.models import SyncRecord
from sync.wire.bundles import make_bundle, write_bundle_file
from sync.wire.signing import new_credential, position_request
from tests.support import csrf_token
from tests.sync.field_app import (
    Household,
    OutgoingTransaction,
    ProducerState,
    create_field_app,
    field_db,
)
from tests.sync.support import AppTransport, producer_state, server_records, wire
from tracker.extensions import db


def add(field_app, *codes):
    with field_app.app_context():
        for code in codes:
            field_db.session.add(Household(code=code, village="Serowe"))
        field_db.session.commit()
        field_db.session.remove()


def field_cli(field_app, *args):
    result = field_app.test_cli_runner().invoke(args=["sync", *args])
    return result.exit_code, result.output


def wiped_device(tmp_path, credential, name="wiped"):
    """The same producer on a fresh database, as after a reinstall."""
    url = f"sqlite:///{tmp_path / (name + '.sqlite')}"
    return create_field_app(url, "laptop-2", None, credential)


def dispose(field_app):
    with field_app.app_context():
        field_db.session.remove()
        field_db.engine.dispose()


def test_a_reinstalled_device_gets_a_new_credential_and_continues(
    server, server_url, make_field, tmp_path
):
    field = make_field(server, "laptop-2")
    add(field, "H1", "H2", "H3", "H4")
    assert field_cli(field, "push", server_url)[0] == 0
    runner = server.test_cli_runner()
    again = runner.invoke(args=["sync", "add-producer", "laptop-2"])
    assert again.exit_code == 1
    assert "manage.py sync reprovision" in again.output
    result = runner.invoke(args=["sync", "reprovision", "laptop-2"])
    assert result.exit_code == 0, result.output
    assert "holds its sequences through 4" in result.output
    assert "the old one is retired" in result.output
    credential = re.search(r"credential: (\S+)", result.output).group(1)

    # What the old device made before the new credential speaks is still taken.
    add(field, "H5")
    code, output = field_cli(field, "push", server_url, "--attempts", "1")
    assert code == 0, output

    device = wiped_device(tmp_path, credential)
    try:
        code, output = field_cli(device, "recover", server_url)
        assert code == 0, output
        assert "holds sequences through 5; this device continues at 6" in output
        add(device, "H6")
        code, output = field_cli(device, "push", server_url)
        assert code == 0, output
    finally:
        dispose(device)
    # From then on the old credential signs nothing new, and says why.
    add(field, "H7")
    code, output = field_cli(field, "push", server_url, "--attempts", "1")
    assert code == 1 and "replaced on" in output
    assert "through sequence 5" in output
    standing = producer_state(server, "laptop-2")
    assert standing["received_through"] == standing["applied_through"] == 6
    assert standing["rejected"] == 0 and standing["credential_changed"]
    assert ("Household", '["H6"]') in server_records(server)
    assert len(server_records(server)) == 6


def test_changes_made_before_recovering_are_renumbered_and_delivered_once(
    server, server_url, make_field, tmp_path
):
    field = make_field(server, "laptop-2")
    add(field, "H1", "H2")
    field_cli(field, "push", server_url)
    credential = stored_credential(field)
    device = wiped_device(tmp_path, credential)
    try:
        # Made before recovering: numbered 1 and 2, which the server holds.
        add(device, "H7", "H8")
        code, output = field_cli(device, "recover", server_url)
        assert code == 0, output
        assert "continues at 5" in output
        assert "2 unsent transactions made here before recovering were renumbered" in (
            output
        )
        # Recover never moves back, and renumbers nothing twice.
        code, output = field_cli(device, "recover", server_url)
        assert "continues at 5" in output and "renumbered" not in output
        add(device, "H9")
        code, output = field_cli(device, "push", server_url)
        assert code == 0, output
    finally:
        dispose(device)
    records = server_records(server)
    assert sorted(key for _, key in records) == [f'["H{n}"]' for n in (1, 2, 7, 8, 9)]
    standing = producer_state(server, "laptop-2")
    assert standing["received_through"] == standing["applied_through"] == 5
    assert standing["rejected"] == 0


def test_sealed_changes_made_before_recovering_are_sealed_anew(
    server, server_url, make_field, tmp_path
):
    field = make_field(server, "laptop-2", encrypt=True)
    add(field, "H1")
    assert field_cli(field, "push", server_url)[0] == 0
    with field.app_context():
        key = field_db.session.scalar(select(ProducerState.encryption_key))
        field_db.session.remove()
    url = f"sqlite:///{tmp_path / 'sealed.sqlite'}"
    device = create_field_app(url, "laptop-2", key, stored_credential(field))
    try:
        add(device, "H7")  # sealed under number 1, which the server holds
        code, output = field_cli(device, "recover", server_url)
        assert code == 0 and "renumbered" in output, output
        code, output = field_cli(device, "push", server_url)
        assert code == 0, output
    finally:
        dispose(device)
    assert sorted(key for _, key in server_records(server)) == ['["H1"]', '["H7"]']
    assert producer_state(server, "laptop-2")["quarantined"] == 0


def test_recover_marks_sent_what_reached_the_server_and_sends_nothing_twice(
    server, server_url, make_field
):
    field = make_field(server, "laptop-2")
    add(field, "H1")
    transport = AppTransport(server)
    transport.lose_replies = 1
    with field.app_context():
        with pytest.raises(TransferError):
            push(
                field_db.session,
                OutgoingTransaction,
                ProducerState,
                push_url(server_url),
                transport,
                retry=Retry(attempts=1, first_delay=0, max_delay=0),
            )
        field_db.session.remove()
    code, output = field_cli(field, "recover", server_url)
    assert code == 0, output
    assert "1 unsent transactions here had reached the server already" in output
    assert "renumbered" not in output and "continues at 2" in output
    assert field_cli(field, "push", server_url)[0] == 0
    with server.app_context():
        assert db.session.scalar(select(SyncRecord.version)) == 1
    assert producer_state(server, "laptop-2")["received_through"] == 1


def test_position_needs_the_current_credential(server, make_field):
    make_field(server, "laptop-2")
    client = server.test_client()
    forged = position_request("laptop-2", new_credential())
    answer = client.post("/api/sync/position", json=forged)
    assert answer.status_code == 403 and answer.json["field"] == "signature"
    assert "''" not in answer.json["message"]
    unknown = client.post(
        "/api/sync/position", json=position_request("ghost", new_credential())
    )
    assert unknown.status_code == 403 and unknown.json["field"] == "producer"
    bad = client.post("/api/sync/position", json={"producer": 3, "signature": "x"})
    assert bad.status_code == 400 and bad.json["field"] == "producer"
    extra = client.post("/api/sync/position", json={**forged, "epoch": 2})
    assert extra.status_code == 400 and extra.json["field"] == "epoch"


def test_api_and_page_issue_a_new_credential(server, make_field, auth_headers, login):
    make_field(server, "laptop-2")
    client = server.test_client()
    path = "/api/sync/producers/laptop-2/credential"
    assert client.post(path).status_code == 401
    answer = client.post(path, headers=auth_headers)
    assert answer.status_code == 200 and answer.json["credential"]
    assert answer.headers["Cache-Control"] == "no-store"
    assert client.post(
        "/api/sync/producers/ghost/credential", headers=auth_headers
    ).status_code == (404)
    with server.app_context():
        from sync.models import SyncProducer

        before = db.session.scalar(select(SyncProducer.public_key))
    Login = login.__class__
    page_client = server.test_client()
    Login(page_client)()
    token = csrf_token(page_client, "/sync/producers/laptop-2")
    page = page_client.post(
        "/sync/producers/laptop-2/credential", data={"csrf_token": token}
    )
    assert page.status_code == 200
    assert 'id="credential"' in page.get_data(as_text=True)
    with server.app_context():
        assert db.session.scalar(select(SyncProducer.public_key)) != before


def stored_credential(field_app) -> str:
    with field_app.app_context():
        credential = field_db.session.scalar(select(ProducerState.credential))
        field_db.session.remove()
    return credential


def server_cli(server, *args):
    result = server.test_cli_runner().invoke(args=["sync", *args])
    return result.exit_code, result.output


def test_a_file_signed_before_a_reprovision_is_still_imported(
    server, server_url, make_field, tmp_path
):
    field = make_field(server, "laptop-2")
    old = stored_credential(field)
    add(field, "H1", "H2")
    assert field_cli(field, "push", server_url)[0] == 0
    add(field, "H3", "H4")
    carried = tmp_path / "carried.jsonl.gz"
    assert field_cli(field, "export", str(carried))[0] == 0
    code, output = server_cli(server, "reprovision", "laptop-2")
    assert code == 0, output
    credential = re.search(r"credential: (\S+)", output).group(1)
    # The file reaches the server after the reprovision: taken, nothing lost.
    code, output = server_cli(server, "import", str(carried))
    assert code == 0, output
    assert len(server_records(server)) == 4
    # The device, not wiped, takes its new credential and goes on.
    code, output = field_cli(field, "configure", "laptop-2", "--credential", credential)
    assert code == 0, output
    add(field, "H5")
    assert field_cli(field, "push", server_url)[0] == 0
    # An old file of sequences it sent again since, under the new credential:
    # refused, saying why and what to do.
    late = make_bundle(
        [wire("laptop-2", 5, "Household", ["H9"], "insert", {"code": "H9"})],
        old,
    )
    path = tmp_path / "late.jsonl.gz"
    with open(path, "wb") as stream:
        write_bundle_file(late, stream)
    code, output = server_cli(server, "import", str(path))
    assert code == 1 and "replaced on" in output
    assert "export them again with its new credential" in output
    assert len(server_records(server)) == 5


def test_a_lost_device_s_credential_is_void_at_once(server, make_field, tmp_path):
    field = make_field(server, "laptop-2")
    add(field, "H1")
    carried = tmp_path / "carried.jsonl.gz"
    assert field_cli(field, "export", str(carried))[0] == 0
    code, output = server_cli(server, "revoke", "laptop-2")
    assert code == 0
    code, output = server_cli(server, "reprovision", "laptop-2")
    assert code == 0 and "(enabled)" in output
    assert "the old one is refused from now on" in output
    assert producer_state(server, "laptop-2")["active"] is True
    code, output = server_cli(server, "import", str(carried))
    assert code == 1 and "the old one was voided" in output
    assert server_records(server) == {}


def test_a_wiped_device_pushing_before_recovering_loses_no_carried_file(
    server, server_url, make_field, tmp_path
):
    field = make_field(server, "laptop-2")
    add(field, "H1")
    assert field_cli(field, "push", server_url)[0] == 0
    add(field, "H2", "H3")
    carried = tmp_path / "carried.jsonl.gz"
    assert field_cli(field, "export", str(carried))[0] == 0
    output = server_cli(server, "reprovision", "laptop-2")[1]
    credential = re.search(r"credential: (\S+)", output).group(1)
    device = wiped_device(tmp_path, credential)
    try:
        # Pushed before recovering: sequence 1 again, all rejected.
        add(device, "H9")
        code, output = field_cli(device, "push", server_url, "--attempts", "1")
        assert code == 1 and "already received with a different hash" in output
        assert "flask sync recover URL" in output
        # The old device's carried file (2-3) is still taken.
        code, output = server_cli(server, "import", str(carried))
        assert code == 0, output
        assert len(server_records(server)) == 3
        code, output = field_cli(device, "recover", server_url)
        assert code == 0, output
        assert "holds sequences through 3; this device continues at 5" in output
        assert "1 unsent transactions made here before recovering were" in output
        # The rejected copy is superseded: the device sends it again renumbered.
        assert producer_state(server, "laptop-2")["rejected"] == 0
        assert field_cli(device, "push", server_url)[0] == 0
        assert len(server_records(server)) == 4
    finally:
        dispose(device)


def test_the_retired_credential_s_limit_is_never_below_what_the_server_holds(
    server, server_url, make_field, tmp_path
):
    field = make_field(server, "laptop-2")
    add(field, "H1", "H2")
    assert field_cli(field, "push", server_url)[0] == 0
    old = stored_credential(field)
    output = server_cli(server, "reprovision", "laptop-2")[1]
    credential = re.search(r"credential: (\S+)", output).group(1)
    # A bundle of the new credential numbered from 1 (made by hand), taken in
    # part, bounds the old credential no lower than sequence 2, held here.
    bundle = make_bundle(
        [
            wire("laptop-2", n, "Household", [code], "insert", {"code": code})
            for n, code in ((1, "H7"), (2, "H8"), (3, "H9"))
        ],
        credential,
    )
    answer = server.test_client().post("/api/sync/push", json=bundle.as_json())
    assert answer.status_code == 200 and answer.json["new"] == 1
    late = make_bundle(
        [wire("laptop-2", 2, "Household", ["H2"], "insert", {"code": "H2"})], old
    )
    answer = server.test_client().post("/api/sync/push", json=late.as_json())
    assert answer.status_code == 200, answer.json

"""The middleman: it takes only bundles its producers signed, sets aside what
the server refuses without blocking the rest, and writes bundles as files for
the site-server-to-central flow. Server and middleman serve real HTTP on
loopback; the field devices push to the middleman over it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from sync.models import SyncProducer
from sync.wire.bundles import make_bundle
from sync.wire.signing import new_credential
from tests.support import serve
from tests.sync.field_app import (
    Household,
    RelayedBundle,
    field_db,
)
from tests.sync.support import producer_state, publish_keys, server_records, wire
from tracker.extensions import db


@pytest.fixture
def relay_url(relay):
    with serve(relay, "127.0.0.2") as url:
        yield url


def cli(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    return result.exit_code, result.output


def add(field_app, *codes):
    with field_app.app_context():
        for code in codes:
            field_db.session.add(Household(code=code, village="Maun"))
        field_db.session.commit()
        field_db.session.remove()


def kept(relay) -> int:
    with relay.app_context():
        count = field_db.session.scalar(select(func.count(RelayedBundle.id)))
        field_db.session.remove()
        return count


def disable(server, producer_id):
    with server.app_context():
        db.session.scalar(
            select(SyncProducer).filter_by(producer_id=producer_id)
        ).active = False
        db.session.commit()


def fetch_keys(relay, server_url, token):
    return cli(relay, "relay", "keys", server_url, "--token", token)


def test_the_middleman_takes_only_bundles_its_producers_signed(
    server, server_url, relay, relay_url, make_field, token
):
    field = make_field(server, "tablet-1")
    add(field, "H1")
    code, output = cli(field, "sync", "push", relay_url, "--attempts", "1")
    assert code == 1 and "not on this middleman's list" in output
    assert kept(relay) == 0

    assert cli(relay, "relay", "keys", server_url, "--token", "wrong")[0] == 1
    code, output = fetch_keys(relay, server_url, token)
    assert code == 0 and "1 producers may push here." in output
    forged = make_bundle(
        [wire("tablet-1", 1, "Household", ["H1"], "insert", {"v": "x"})],
        new_credential(),
    ).as_json()
    answer = relay.test_client().post("/api/sync/push", json=forged)
    assert answer.status_code == 403 and answer.json["field"] == "signature"
    assert kept(relay) == 0

    assert cli(field, "sync", "push", relay_url)[0] == 0
    code, output = cli(relay, "relay", "forward", server_url)
    assert code == 0 and "Forwarded 1 transactions in 1 bundles." in output
    assert ("Household", '["H1"]') in server_records(server)


def test_a_bundle_the_server_refuses_is_set_aside_and_blocks_nothing(
    server, server_url, relay, relay_url, make_field, token
):
    first, second = make_field(server, "tablet-1"), make_field(server, "tablet-2")
    fetch_keys(relay, server_url, token)
    add(first, "H1")
    add(second, "H2")
    assert cli(first, "sync", "push", relay_url)[0] == 0
    assert cli(second, "sync", "push", relay_url)[0] == 0
    # The server no longer takes tablet-1 (stolen, say) since the list was fetched.
    disable(server, "tablet-1")
    code, output = cli(relay, "relay", "forward", server_url, "--attempts", "1")
    assert code == 1, output
    assert "Forwarded 1 transactions in 1 bundles." in output
    assert "refused by the server, set aside: #1 tablet-1 1-1" in output
    assert set(server_records(server)) == {("Household", '["H2"]')}

    add(second, "H3")
    cli(second, "sync", "push", relay_url)
    assert "Forwarded 1 transactions" in cli(relay, "relay", "forward", server_url)[1]
    code, output = cli(relay, "relay", "status")
    assert "0 bundles waiting to be forwarded, 2 forwarded" in output
    assert "1 refused" in output and "refused #1 tablet-1 1-1:" in output
    assert cli(relay, "relay", "retry", "1")[0] == 0
    again = cli(relay, "relay", "forward", server_url, "--attempts", "1")[1]
    assert "refused by the server, set aside: #1 tablet-1" in again
    assert cli(relay, "relay", "drop", "1")[0] == 0
    assert cli(relay, "relay", "drop", "1")[0] == 1
    assert kept(relay) == 2


def test_site_server_to_file_to_central_server(
    server, relay, relay_url, server_url, make_field, token, tmp_path
):
    field = make_field(server, "tablet-1")
    fetch_keys(relay, server_url, token)
    add(field, "H1", "H2")
    cli(field, "sync", "push", relay_url, "--batch-size", "1")
    code, output = cli(relay, "relay", "export", str(tmp_path / "out"))
    assert code == 0 and "Wrote 2 bundle files." in output
    files = sorted(str(path) for path in (tmp_path / "out").iterdir())
    assert [name.rsplit("/", 1)[-1] for name in files] == [
        "tablet-1-000000001-000000001.jsonl.gz",
        "tablet-1-000000002-000000002.jsonl.gz",
    ]
    # Exported bundles left by file: nothing more to forward.
    assert "Forwarded 0" in cli(relay, "relay", "forward", server_url)[1]
    assert "2 exported to files" in cli(relay, "relay", "status")[1]
    result = server.test_cli_runner().invoke(args=["sync", "import", *files[::-1]])
    assert result.exit_code == 0, result.output
    assert producer_state(server, "tablet-1")["applied_through"] == 2
    assert len(server_records(server)) == 2


def test_an_export_that_stops_says_what_it_wrote_and_what_remains(
    server, relay, relay_url, server_url, make_field, token, tmp_path
):
    field = make_field(server, "tablet-1")
    fetch_keys(relay, server_url, token)
    add(field, "H1", "H2", "H3")
    cli(field, "sync", "push", relay_url, "--batch-size", "1")
    out = tmp_path / "out"
    # The second file's name is taken by a directory: its write fails.
    (out / "tablet-1-000000002-000000002.jsonl.gz").mkdir(parents=True)
    code, output = cli(relay, "relay", "export", str(out))
    assert code == 1
    assert "Wrote 1 bundle files." in output
    assert "the export stopped:" in output and "2 bundles remain waiting" in output
    (out / "tablet-1-000000002-000000002.jsonl.gz").rmdir()
    code, output = cli(relay, "relay", "export", str(out))
    assert code == 0 and "Wrote 2 bundle files." in output
    assert "3 exported to files" in cli(relay, "relay", "status")[1]


def test_forward_says_what_the_server_held_and_why(
    make_app, relay, relay_url, make_field
):
    server = make_app(SYNC_MODELS=["Member"])
    field = make_field(server, "tablet-1")
    publish_keys(server, relay)
    add(field, "H1")
    assert cli(field, "sync", "push", relay_url)[0] == 0
    with serve(server) as server_url:
        code, output = cli(relay, "relay", "forward", server_url)
    assert code == 0, output
    assert "Forwarded 1 transactions in 1 bundles." in output
    assert "held by the server: 1 transactions" in output
    assert "warning: 1 transactions were held, not applied" in output
    assert "SYNC_MODELS" in output


def test_drop_and_retry_touch_only_refused_bundles_and_numbers_are_not_reused(
    server, server_url, relay, relay_url, make_field, token
):
    first, second = make_field(server, "tablet-1"), make_field(server, "tablet-2")
    fetch_keys(relay, server_url, token)
    add(first, "H1")
    assert cli(first, "sync", "push", relay_url)[0] == 0
    disable(server, "tablet-1")
    code, output = cli(relay, "relay", "forward", server_url, "--attempts", "1")
    assert code == 1 and "set aside: #1 tablet-1 1-1" in output
    add(second, "H2")
    assert cli(second, "sync", "push", relay_url)[0] == 0
    # Bundle #2 waits to be forwarded: neither drop nor retry touches it.
    for command in ("drop", "retry"):
        code, output = cli(relay, "relay", command, "2")
        assert code == 1 and "#2 was not refused" in output, output
        assert len(output.strip().splitlines()) == 1
    assert kept(relay) == 2
    assert cli(relay, "relay", "drop", "1")[0] == 0
    assert cli(relay, "relay", "drop", "2")[0] == 1
    # Drop the highest-numbered bundle: its number is not given again.
    assert cli(relay, "relay", "forward", server_url)[0] == 0
    add(second, "H3")
    cli(second, "sync", "push", relay_url)
    disable(server, "tablet-2")
    output = cli(relay, "relay", "forward", server_url, "--attempts", "1")[1]
    assert "set aside: #3 tablet-2 2-2" in output
    assert cli(relay, "relay", "drop", "3")[0] == 0
    add(second, "H4")
    cli(second, "sync", "push", relay_url)
    output = cli(relay, "relay", "forward", server_url, "--attempts", "1")[1]
    assert "set aside: #4 tablet-2 3-3" in output, output

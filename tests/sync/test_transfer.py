"""Real field clients on loopback: pushing over HTTP directly and through a
middleman, and the commands the device, the middleman and the server run."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import func, select

from sync.client.relay import forward
from sync.client.transfer import HttpTransport, push, push_url
from sync.models import IncomingTransaction, SyncRecord
from sync.wire.bundles import make_bundle
from tests.support import serve
from tests.sync.field_app import (
    Household,
    Member,
    OutgoingTransaction,
    ProducerState,
    RelayedBundle,
    field_db,
)
from tests.sync.support import (
    NO_WAIT,
    field_records,
    publish_keys,
    register,
    server_records,
    wire,
)
from tracker.extensions import db


def survey(field_app, prefix, households=30):
    with field_app.app_context():
        for number in range(households):
            household = Household(code=f"{prefix}{number}", village="Serowe")
            field_db.session.add(household)
            field_db.session.flush()
            field_db.session.add(
                Member(identifier=f"{prefix}{number}-a", household_id=household.id)
            )
        field_db.session.commit()
        first = field_db.session.scalar(select(Household))
        first.village = "Palapye"
        field_db.session.delete(field_db.session.scalar(select(Member)))
        field_db.session.commit()
        field_db.session.remove()


def push_over_http(field_app, url, batch_size=25):
    with field_app.app_context():
        summary = push(
            field_db.session,
            OutgoingTransaction,
            ProducerState,
            push_url(url),
            HttpTransport(timeout=30),
            batch_size,
            NO_WAIT,
        )
        field_db.session.remove()
        return summary


def test_field_clients_push_over_http_directly(server, make_field, server_url):
    first = make_field(server, "laptop-1")
    second = make_field(server, "laptop-2")
    survey(first, "A")
    survey(second, "B")
    assert push_over_http(first, server_url).sent == 62
    assert push_over_http(second, server_url).sent == 62
    assert server_records(server) == {**field_records(first), **field_records(second)}


def test_field_clients_push_through_a_middleman(server, make_field, server_url, relay):
    field = make_field(server, "laptop-1")
    survey(field, "A")
    publish_keys(server, relay)
    with serve(relay, "127.0.70.1") as relay_url:
        summary = push_over_http(field, relay_url)
        assert summary.sent == 62 and summary.last_reply["relayed"] is True
        # Pushed twice (say, the device missed the answer): kept once.
        with field.app_context():
            field_db.session.execute(
                OutgoingTransaction.__table__.update().values(sent=False)
            )
            field_db.session.commit()
            field_db.session.remove()
        push_over_http(field, relay_url)
    assert server_records(server) == {}
    with relay.app_context():
        result = forward(
            field_db.session,
            RelayedBundle,
            push_url(server_url),
            HttpTransport(timeout=30),
            NO_WAIT,
        )
        field_db.session.remove()
    assert (result.bundles, result.transactions) == (3, 62)
    assert server_records(server) == field_records(field)
    with server.app_context():
        sequences = db.session.scalars(
            select(IncomingTransaction.sequence).order_by(IncomingTransaction.sequence)
        ).all()
    assert sequences == list(range(1, 63))


def test_device_commands_push_and_export(server, make_field, server_url, tmp_path):
    field = make_field(server, "laptop-1")
    survey(field, "A", households=3)
    runner = field.test_cli_runner()
    result = runner.invoke(args=["sync", "export", str(tmp_path / "out.jsonl.gz")])
    assert result.exit_code == 0 and "Wrote 8 transactions (1-8)" in result.output
    result = runner.invoke(args=["sync", "export", str(tmp_path / "again.jsonl.gz")])
    assert "Nothing new to export" in result.output
    result = runner.invoke(args=["sync", "push", server_url, "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    assert "Pushed 8 transactions in 3 bundles" in result.output
    result = runner.invoke(args=["sync", "status"])
    assert "0 of 8 transactions not yet acknowledged" in result.output
    # Nothing left to send: the unreachable address is never tried.
    result = runner.invoke(args=["sync", "push", "http://127.0.0.1:9"])
    assert result.exit_code == 0 and "Pushed 0 transactions" in result.output


def test_device_push_to_nowhere_fails_with_one_line(make_field, server):
    field = make_field(server, "laptop-1")
    survey(field, "A", households=1)
    result = field.test_cli_runner().invoke(
        args=["sync", "push", "http://127.0.0.1:9", "--attempts", "2"]
    )
    assert result.exit_code == 1
    assert "gave up after 2 attempts" in result.output
    with field.app_context():
        unsent = field_db.session.scalar(
            select(func.count()).where(OutgoingTransaction.sent.is_(False))
        )
        field_db.session.remove()
    assert unsent == 4


def test_server_commands(server, make_field, tmp_path):
    runner = server.test_cli_runner()
    result = runner.invoke(args=["sync", "add-producer", "bad id"])
    assert result.exit_code == 1 and "producer_id" in result.output
    result = runner.invoke(args=["sync", "add-producer", "kiosk-1", "--encrypt"])
    assert result.exit_code == 0 and "credential: " in result.output
    assert "encryption key: " in result.output
    result = runner.invoke(args=["sync", "status"])
    assert "kiosk-1" in result.output and "never" in result.output
    result = runner.invoke(args=["sync", "apply"])
    assert "Nothing to apply" in result.output

    field = make_field(server, "laptop-1")
    survey(field, "A", households=2)
    field.test_cli_runner().invoke(args=["sync", "export", str(tmp_path / "a.gz")])
    broken = tmp_path / "broken.gz"
    broken.write_bytes((tmp_path / "a.gz").read_bytes()[:-5])
    result = runner.invoke(args=["sync", "import", str(tmp_path / "a.gz"), str(broken)])
    assert result.exit_code == 1
    assert "transactions 1-6: 6 new, 0 already received, 6 applied" in result.output
    assert "broken.gz: refused: file: ends before its end" in result.output
    result = runner.invoke(args=["sync", "import", str(tmp_path / "a.gz")])
    assert result.exit_code == 0 and "already imported" in result.output


def test_concurrent_deliveries_of_the_same_bundles_apply_once(server, server_url):
    credentials = {name: register(server, name)[0] for name in ("kiosk-1", "kiosk-2")}
    bundles = []
    for name, credential in credentials.items():
        transactions = [
            wire(name, n, "Household", [f"{name}-{n % 7}"], "insert", {"n": n})
            for n in range(1, 41)
        ]
        bundles += [
            make_bundle(transactions[start : start + 10], credential).as_json()
            for start in range(0, 40, 10)
        ]

    def deliver(bundle):
        reply = requests.post(f"{server_url}/api/sync/push", json=bundle, timeout=60)
        return reply.status_code

    # Every bundle four times, from eight threads at once, in shuffled order.
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(deliver, bundles[::-1] + bundles * 3))
    assert set(statuses) == {200}
    with server.app_context():
        assert db.session.scalar(select(func.count(IncomingTransaction.id))) == 80
        versions = db.session.execute(
            select(SyncRecord.natural_key, SyncRecord.version)
        ).all()
    # 40 inserts per producer over 7 keys: keys 0..4 take 6, keys 5..6 take 5.
    assert sorted(version for _, version in versions) == sorted(
        [6] * 5 * 2 + [5] * 2 * 2
    )

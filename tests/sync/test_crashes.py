"""Sync survives SIGKILL: with the server, a field client or a middleman killed
mid-way and started again, every transaction is applied exactly once.

Each test runs real processes on loopback addresses (tests/sync/processes.py):
the tracker served by werkzeug on the test database (SQLite and PostgreSQL),
``flask sync push`` and ``flask relay forward`` as on a device or middleman.
A record's ``version`` counts the transactions applied to it, so applying one
twice shows; the workload renames no record and reuses no deleted key, so the
expected version of a record is the number of its transactions.
"""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from sync.client.transfer import HttpTransport, PushSummary, Retry, push, push_url
from sync.deliveries import DeliverySettings, apply_all
from sync.models import APPLIED, IncomingTransaction, SyncProducer, SyncRecord
from sync.producers import register_producer
from sync.wire.signing import new_credential, public_key_of
from tests.sync.field_app import (
    Household,
    Member,
    OutgoingTransaction,
    ProducerState,
    RelayedBundle,
    create_field_app,
    create_relay_app,
    field_db,
)
from tests.sync.processes import ChildProcess, HttpProcess, Processes, wait_until
from tests.sync.support import FIELD_MODELS, field_records, publish_keys
from tracker.extensions import db

pytestmark = pytest.mark.slow

# Big bundles are taken whole; applying one takes many committed runs.
SERVER_SETTINGS = {
    "SYNC_MODELS": FIELD_MODELS,
    "SYNC_MAX_BATCH": 5000,
    "SYNC_APPLY_RUN_SIZE": 50,
}
CHUNK = 100


def record_changes(session, prefix: str, households: int) -> int:
    """Insert ``households`` households and 1.5 times as many members (each
    pointing to its household), update some of both, delete some members and
    some households with their members; return the number of changes."""
    household_ids = []
    for start in range(0, households, CHUNK):
        added = [
            Household(
                code=f"{prefix}H{number:05d}",
                village=f"Village {number % 17}",
                income=Decimal(f"{number}.25"),
                enumerated=date(2026, 1, 1 + number % 28),
            )
            for number in range(start, min(start + CHUNK, households))
        ]
        session.add_all(added)
        session.flush()
        household_ids.extend(household.id for household in added)
        session.commit()
    members = households * 3 // 2
    for start in range(0, members, CHUNK):
        session.add_all(
            Member(
                identifier=f"{prefix}M{number:05d}",
                household_id=household_ids[number % households],
                name=f"Member {number}",
            )
            for number in range(start, min(start + CHUNK, members))
        )
        session.commit()
    updated = households * 3 // 8
    for household in session.scalars(
        select(Household).where(Household.id.in_(household_ids[:updated]))
    ):
        household.village += " (moved)"
    for member in session.scalars(
        select(Member).where(
            Member.identifier.in_([f"{prefix}M{n:05d}" for n in range(updated)])
        )
    ):
        member.name += " Jr."
    session.commit()
    gone = household_ids[households - households // 8 :]
    doomed = [f"{prefix}M{n:05d}" for n in range(households, households * 5 // 4)]
    for member in session.scalars(
        select(Member).where(
            Member.household_id.in_(gone) | Member.identifier.in_(doomed)
        )
    ):
        session.delete(member)
    session.commit()
    for household in session.scalars(select(Household).where(Household.id.in_(gone))):
        session.delete(household)
    session.commit()
    return session.scalar(select(func.count(OutgoingTransaction.id)))


@dataclass(frozen=True)
class Template:
    path: Path
    credential: str
    changes: int


@pytest.fixture(scope="session")
def field_templates(tmp_path_factory):
    """Field databases full of unsent changes, built once and copied per test."""
    built: dict[tuple[str, str, int], Template] = {}

    def template(producer_id: str, prefix: str, households: int) -> Template:
        key = (producer_id, prefix, households)
        if key not in built:
            path = tmp_path_factory.mktemp("field") / f"{producer_id}.sqlite"
            credential = new_credential()
            app = create_field_app(f"sqlite:///{path}", producer_id, None, credential)
            with app.app_context():
                changes = record_changes(field_db.session, prefix, households)
                field_db.session.remove()
                field_db.engine.dispose()
            built[key] = Template(path, credential, changes)
        return built[key]

    return template


@dataclass
class FieldClient:
    """A field device's database with its unsent changes, and an app on it."""

    producer_id: str
    credential: str
    database_url: str
    changes: int
    app: Flask

    @property
    def app_spec(self) -> str:
        """The ``flask --app`` value that opens this device's application."""
        return (
            f"tests.sync.field_app:create_field_app({self.database_url!r},"
            f" {self.producer_id!r}, None, {self.credential!r})"
        )

    def outgoing(self) -> list[OutgoingTransaction]:
        with self.app.app_context():
            rows = field_db.session.scalars(
                select(OutgoingTransaction).order_by(OutgoingTransaction.sequence)
            ).all()
            field_db.session.expunge_all()
            return rows

    def sent(self) -> set[int]:
        with self.app.app_context():
            return set(
                field_db.session.scalars(
                    select(OutgoingTransaction.sequence).where(
                        OutgoingTransaction.sent.is_(True)
                    )
                )
            )


@pytest.fixture
def server_app(make_app):
    """The tracker on the test database, tables created; the process under
    test serves the same settings."""
    app = make_app(**SERVER_SETTINGS)
    with app.app_context():
        from tracker.models import import_all_models

        import_all_models()
        db.create_all()
    return app


@pytest.fixture
def make_client(field_templates, server_app, tmp_path):
    """A registered field device holding ``3.75 * households`` unsent changes."""
    apps = []

    def make(producer_id: str, prefix: str, households: int) -> FieldClient:
        template = field_templates(producer_id, prefix, households)
        path = tmp_path / f"{producer_id}.sqlite"
        shutil.copyfile(template.path, path)
        with server_app.app_context():
            register_producer(
                db.session, producer_id, public_key=public_key_of(template.credential)
            )
            db.session.commit()
        url = f"sqlite:///{path}"
        app = create_field_app(url, producer_id, None, template.credential)
        apps.append(app)
        return FieldClient(producer_id, template.credential, url, template.changes, app)

    yield make
    for app in apps:
        with app.app_context():
            field_db.session.remove()
            field_db.engine.dispose()


def start_tracker(processes: Processes, server_app: Flask, **options) -> HttpProcess:
    """The tracker as a server process, with the settings of ``server_app``."""
    return processes.tracker(
        {
            "SQLALCHEMY_DATABASE_URI": server_app.config["SQLALCHEMY_DATABASE_URI"],
            **SERVER_SETTINGS,
        },
        Path(server_app.instance_path),
        **options,
    )


def start_push(
    processes: Processes, client: FieldClient, url: str, batch_size: int
) -> ChildProcess:
    """``flask sync push URL`` on the device, on hold until told to go."""
    return processes.flask(
        f"push-{client.producer_id}",
        client.app_spec,
        "sync",
        "push",
        url,
        "--batch-size",
        str(batch_size),
        "--attempts",
        "20",
        hold=True,
    )


def cursors(server_app: Flask, producer_id: str) -> tuple[int, int]:
    """The producer's (received_through, applied_through) as committed."""
    with server_app.app_context():
        row = db.session.execute(
            select(SyncProducer.received_through, SyncProducer.applied_through).where(
                SyncProducer.producer_id == producer_id
            )
        ).one()
        return row.received_through, row.applied_through


def incoming(server_app: Flask, producer_id: str) -> dict[int, tuple[str, str]]:
    """The producer's received transactions: sequence -> (hash, status)."""
    with server_app.app_context():
        rows = db.session.execute(
            select(
                IncomingTransaction.sequence,
                IncomingTransaction.hash,
                IncomingTransaction.status,
            )
            .join(SyncProducer, SyncProducer.id == IncomingTransaction.producer_id)
            .where(SyncProducer.producer_id == producer_id)
        )
        return {row.sequence: (row.hash, row.status) for row in rows}


def assert_cursor_covers_exactly_the_applied(server_app: Flask, producer_id: str):
    """After a crash, the transactions up to the cursor are applied, no others:
    the records and the cursor were committed together."""
    _, applied_through = cursors(server_app, producer_id)
    applied = sorted(
        sequence
        for sequence, (_, status) in incoming(server_app, producer_id).items()
        if status == APPLIED
    )
    assert applied == list(range(1, applied_through + 1)), (
        f"cursor at {applied_through} but {len(applied)} applied:"
        " records and cursor were not committed together"
    )


def assert_applied_exactly_once(server_app: Flask, clients: list[FieldClient]):
    """Every client transaction reached the server under its own producer and
    sequence, was applied once, and the records equal the clients' records."""
    expected_records: dict[tuple[str, str], dict] = {}
    transactions_per_record: Counter[tuple[str, str]] = Counter()
    for client in clients:
        outgoing = client.outgoing()
        assert len(outgoing) == client.changes
        received = incoming(server_app, client.producer_id)
        assert {row.sequence: row.hash for row in outgoing} == {
            sequence: hash_ for sequence, (hash_, _) in received.items()
        }, f"{client.producer_id}: the server's sequences differ from the client's"
        statuses = Counter(status for _, status in received.values())
        assert statuses == {APPLIED: client.changes}, client.producer_id
        assert cursors(server_app, client.producer_id) == (
            client.changes,
            client.changes,
        )
        transactions_per_record.update((row.model, row.natural_key) for row in outgoing)
        expected_records.update(field_records(client.app))
    with server_app.app_context():
        records = db.session.scalars(
            select(SyncRecord).where(SyncRecord.deleted.is_(None))
        ).all()
        held = {(r.model, r.natural_key): r.fields for r in records}
        versions = {(r.model, r.natural_key): r.version for r in records}
    assert held == expected_records
    assert versions == {key: transactions_per_record[key] for key in held}


class PushThread(threading.Thread):
    """``push()`` over real HTTP, retrying quickly and patiently until the
    server answers; the test can call it off."""

    def __init__(self, client: FieldClient, url: str, batch_size: int) -> None:
        super().__init__(name=f"push-{client.producer_id}", daemon=True)
        self.client = client
        self.url = url
        self.batch_size = batch_size
        self.called_off = threading.Event()
        self.summary: PushSummary | None = None
        self.error: BaseException | None = None

    def _sleep(self, seconds: float) -> None:
        if self.called_off.wait(seconds):
            raise RuntimeError("the test called the push off")

    def run(self) -> None:
        retry = Retry(attempts=1000, first_delay=0.05, max_delay=0.5, sleep=self._sleep)
        try:
            with self.client.app.app_context():
                self.summary = push(
                    field_db.session,
                    OutgoingTransaction,
                    ProducerState,
                    push_url(self.url),
                    HttpTransport(timeout=300),
                    self.batch_size,
                    retry,
                )
                field_db.session.remove()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def result(self) -> PushSummary:
        self.join(timeout=300)
        assert not self.is_alive(), "the push did not finish"
        if self.error is not None:
            raise self.error
        assert self.summary is not None
        return self.summary


def applied_count(server_app: Flask, producer_id: str) -> int:
    """How many of the producer's transactions are marked applied."""
    return Counter(status for _, status in incoming(server_app, producer_id).values())[
        APPLIED
    ]


def kill_while_applying(
    server: HttpProcess,
    server_app: Flask,
    pushing: PushThread,
    progress: Callable[[], int],
    after: int,
) -> int:
    """SIGKILL the server the moment ``progress`` passes ``after``, before the
    client's transactions are all applied; return where its cursor was left."""
    producer_id, total = pushing.client.producer_id, pushing.client.changes

    def in_the_middle() -> bool:
        assert pushing.error is None, f"the push failed: {pushing.error!r}"
        assert cursors(server_app, producer_id)[1] < total, (
            "the apply finished before it could be interrupted"
        )
        return progress() > after

    wait_until(in_the_middle, f"{producer_id} applied past {after}", watch=[server])
    server.kill()
    assert_cursor_covers_exactly_the_applied(server_app, producer_id)
    received, applied = cursors(server_app, producer_id)
    assert received == total
    assert after < applied < total
    return applied


def test_server_killed_while_applying_a_large_bundle(
    server_app, make_client, processes
):
    # Slow commits: the apply spans seconds on any machine, so kills land in it.
    server = start_tracker(processes, server_app, commit_delay=0.05)
    client = make_client("tablet-1", "A", 400)
    total = client.changes
    assert total == 1500
    server.wait_until_serving()
    standby = processes.standby(server)
    pushing = PushThread(client, server.url, batch_size=5000)
    pushing.start()
    try:
        # Killed in the middle of applying the one bundle the push delivered,
        # as soon as applied records show ...
        first = kill_while_applying(
            server,
            server_app,
            pushing,
            progress=lambda: applied_count(server_app, "tablet-1"),
            after=0,
        )
        server = standby.go().wait_until_serving()
        standby = processes.standby(server)
        # ... and again while the client's retry resumes the apply, as soon as
        # the cursor moves: records and cursor committed apart would show ...
        second = kill_while_applying(
            server,
            server_app,
            pushing,
            progress=lambda: cursors(server_app, "tablet-1")[1],
            after=first,
        )
        # ... which the periodic apply (``manage.py sync apply``) finishes ...
        settings = DeliverySettings.from_config(server_app.config)
        with server_app.app_context():
            totals = apply_all(db.session, settings, db.session.commit)
        assert (totals.applied, totals.parked) == (total - second, 0)
        # ... before the server is back to acknowledge the client's next retry.
        standby.go().wait_until_serving()
        summary = pushing.result()
    finally:
        pushing.called_off.set()
    assert (summary.bundles, summary.sent, summary.duplicates) == (1, total, total)
    assert summary.last_reply["applied"] == 0
    assert client.sent() == set(range(1, total + 1))
    assert_applied_exactly_once(server_app, [client])
    with server_app.app_context():
        assert apply_all(db.session, settings, db.session.commit) is None


def test_client_killed_mid_push_resends_without_applying_twice(
    server_app, make_client, processes
):
    # Slow commits keep each request in flight long enough that a kill often
    # lands after the server stored a bundle and before the client heard so.
    server = start_tracker(processes, server_app, commit_delay=0.01)
    client = make_client("tablet-1", "A", 160)
    total = client.changes
    pusher = start_push(processes, client, server.url, batch_size=20)
    server.wait_until_serving()
    pusher.go()
    stored_but_unacknowledged = set()
    # Each kill leaves a third or more to push: a busy machine cannot miss it.
    for fraction in (1 / 6, 2 / 5, 2 / 3):
        standby = processes.standby(pusher)

        def server_ahead_of_client(threshold=int(total * fraction)) -> bool:
            # Read the client first: what it marked, the server had before.
            sent_through = max(client.sent(), default=0)
            received, _ = cursors(server_app, "tablet-1")
            assert sent_through <= received, "marked sent before it was received"
            assert received < total, "the push finished before it could be killed"
            return received >= threshold and sent_through < received

        wait_until(
            server_ahead_of_client,
            f"the server to receive {fraction:.0%} of the changes",
            watch=[pusher, server],
        )
        pusher.kill()
        # Marked sent only once acknowledged: the server has every one of them.
        sent, received = client.sent(), set(incoming(server_app, "tablet-1"))
        assert sent <= received
        stored_but_unacknowledged |= received - sent
        pusher = standby.go()
    pusher.finish()
    # The kills caught bundles between storing and acknowledging (each kill
    # aims at that moment), so some were sent again, and applied once.
    assert stored_but_unacknowledged
    assert client.sent() == set(range(1, total + 1))
    assert_applied_exactly_once(server_app, [client])


def relay_bundles(relay_app: Flask) -> tuple[int, int]:
    """How many bundles the middleman keeps, and how many it has forwarded."""
    with relay_app.app_context():
        kept, forwarded = field_db.session.execute(
            select(
                func.count(RelayedBundle.id),
                func.count(RelayedBundle.id).filter(RelayedBundle.forwarded),
            )
        ).one()
        field_db.session.remove()
        return kept, forwarded


def relay_sequences(
    relay_app: Flask, producer_id: str, forwarded_only: bool = False
) -> set[int]:
    """The sequences of ``producer_id`` in the bundles the middleman keeps
    (or has forwarded)."""
    statement = select(RelayedBundle.first_sequence, RelayedBundle.last_sequence).where(
        RelayedBundle.producer_id == producer_id
    )
    if forwarded_only:
        statement = statement.where(RelayedBundle.forwarded)
    with relay_app.app_context():
        ranges = field_db.session.execute(statement).all()
        field_db.session.remove()
    return {n for first, last in ranges for n in range(first, last + 1)}


@pytest.fixture
def relay_app(tmp_path):
    """The middleman's database, read by the test while its processes run."""
    app = create_relay_app(f"sqlite:///{tmp_path / 'relay.sqlite'}")
    yield app
    with app.app_context():
        field_db.session.remove()
        field_db.engine.dispose()


def test_middleman_killed_while_receiving_and_forwarding(
    server_app, make_client, relay_app, processes
):
    relay_url = relay_app.config["SQLALCHEMY_DATABASE_URI"]
    relay_spec = f"tests.sync.field_app:create_relay_app({relay_url!r})"
    # Slow commits on both: kills land while requests are in flight.
    server = start_tracker(processes, server_app, commit_delay=0.01)
    relay = processes.relay(relay_url, commit_delay=0.01)
    clients = [make_client("tablet-1", "A", 160), make_client("tablet-2", "B", 80)]
    publish_keys(server_app, relay_app)
    batch = 20
    bundles = sum(-(-client.changes // batch) for client in clients)
    pushers = [start_push(processes, c, relay.url, batch) for c in clients]
    forwarder = processes.flask(
        "forward", relay_spec, "relay", "forward", server.url, hold=True
    )
    relay.wait_until_serving()
    standby = processes.standby(relay)
    for pusher in pushers:
        pusher.go()

    def kept_a_quarter() -> bool:
        for client in clients:
            # The device first: what it marked, the middleman kept before.
            sent = client.sent()
            kept = relay_sequences(relay_app, client.producer_id)
            assert sent <= kept, f"{client.producer_id}: marked sent, never kept"
        return relay_bundles(relay_app)[0] >= bundles // 4

    # Two devices push at once; the middleman dies while receiving ...
    wait_until(
        kept_a_quarter,
        "the middleman to keep a quarter of the bundles",
        watch=[relay, *pushers],
    )
    relay.kill()
    # ... having kept whatever a device took as acknowledged, not yet all.
    held = {c.producer_id: relay_sequences(relay_app, c.producer_id) for c in clients}
    assert sum(map(len, held.values())) < sum(c.changes for c in clients)
    for client in clients:
        assert client.sent() <= held[client.producer_id]
    relay = standby.go().wait_until_serving()
    for pusher in pushers:
        pusher.finish()
    # Forwarding is killed twice on its way to the server.
    server.wait_until_serving()
    for fraction in (1 / 4, 3 / 5):
        forwarder.go()
        standby = processes.standby(forwarder)

        def forwarded_enough(threshold=int(bundles * fraction)) -> bool:
            for client in clients:
                # The middleman first: what it marked, the server had before.
                marked = relay_sequences(relay_app, client.producer_id, True)
                on_server = set(incoming(server_app, client.producer_id))
                assert marked <= on_server, "marked forwarded, never received"
            return relay_bundles(relay_app)[1] >= threshold

        wait_until(
            forwarded_enough,
            f"the middleman to forward {fraction:.0%} of the bundles",
            watch=[forwarder, server],
        )
        forwarder.kill()
        assert relay_bundles(relay_app)[1] < bundles, "killed after forwarding all"
        forwarder = standby
    forwarder.go().finish()
    kept, forwarded = relay_bundles(relay_app)
    assert kept == forwarded >= bundles
    for client in clients:
        assert client.sent() == set(range(1, client.changes + 1))
    assert_applied_exactly_once(server_app, clients)

"""Whatever the order of edits, crashes, pushes, relays and carried files, the
server ends up holding exactly the field clients' records, each change applied
once: a property test over random histories of three devices and a middleman."""

from __future__ import annotations

import functools
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sync.client.operations import configure_producer, open_payload
from sync.client.relay import forward, import_relay_file
from sync.client.transfer import Unreachable, export, push
from sync.deliveries import (
    AlreadyImported,
    DeliverySettings,
    accept_push,
    apply_all,
    import_file,
)
from sync.models import (
    APPLIED,
    RECEIVED,
    IncomingTransaction,
    RejectedTransaction,
    SyncProducer,
    SyncRecord,
)
from sync.wire.bundles import bundle_from_json
from sync.wire.payloads import canonical_json
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
from tests.sync.support import (
    FIELD_MODELS,
    NO_WAIT,
    AppTransport,
    field_records,
    publish_keys,
    register,
    server_records,
)
from tracker.extensions import db
from tracker.models import import_all_models

SERVER_URL = "http://server/api/sync/push"
RELAY_URL = "http://relay/api/sync/push"
# Device "b" seals its payloads, so both kinds travel.
DEVICES = {"a": False, "b": True, "c": False}
# Small key pools, so deleted and renamed keys are soon used again.
HOUSEHOLD_KEYS = 4
MEMBER_KEYS = 6
# A small apply run puts run boundaries between renames, parents and children.
APPLY_RUN_SIZE = 3

Key = tuple[str, str]  # (model, canonical JSON natural key), as on the server


class Crash(BaseException):
    """The process dies here; a BaseException, so no ``except Exception`` in the
    code under test can carry on as if it had not."""


@dataclass(frozen=True)
class Death:
    """The process dies at its ``at``-th commit, after that commit is durable or
    before."""

    at: int
    durable: bool

    def around(self, commit: Callable[[], None]) -> Callable[[], None]:
        calls = 0

        def dying_commit() -> None:
            nonlocal calls
            calls += 1
            if calls < self.at:
                commit()
                return
            if self.durable:
                commit()
            raise Crash()

        return dying_commit


class FlakyTransport(AppTransport):
    """Posts in-process, as the faults say one post after another: "ok", a
    "lost request" that never arrives, a "lost reply" after the receiver
    processed the post, or a Death of the receiver while processing it (through
    ``die``; without it the receiver dies before keeping anything)."""

    def __init__(
        self,
        app,
        faults: list[str | Death],
        die: Callable[[dict[str, Any], Death], None] | None = None,
    ) -> None:
        super().__init__(app)
        self.faults = list(faults)
        self.die = die

    def post(self, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        fault = self.faults.pop(0) if self.faults else "ok"
        if isinstance(fault, Death) and self.die:
            self.die(body, fault)
        if fault == "lost request" or isinstance(fault, Death):
            raise Unreachable("no answer")
        status, reply = super().post(url, body)
        assert status == 200, reply  # nothing here is invalid: a refusal is a bug
        if fault == "lost reply":
            raise Unreachable("the reply was lost")
        return status, reply


def commit_for(session: Session, death: Death | None) -> Callable[[], None]:
    return death.around(session.commit) if death else session.commit


@dataclass(frozen=True)
class Recorded:
    """One outgoing transaction of a device, as its payload says."""

    sequence: int
    key: Key
    action: str
    fields: dict[str, Any]
    previous: Key | None


def replay(log: list[Recorded]) -> dict[Key, tuple[dict[str, Any], int]]:
    """The records a device's transactions describe, each with the number of
    changes made to it since it was inserted: the model the server must follow.
    An update carries the fields it changes; the others keep their values."""
    records: dict[Key, tuple[dict[str, Any], int]] = {}
    for change in log:
        if change.action == "delete":
            assert records.pop(change.key, None) is not None, change
            continue
        if change.action == "insert":
            assert change.key not in records, change
            fields, version = {}, 0
        else:
            fields, version = records.pop(change.previous or change.key)
        records[change.key] = ({**fields, **change.fields}, version + 1)
    return records


def empty(session: Session, metadata: Any) -> None:
    """Delete every row, children first: a fresh database, quicker than new files."""
    connection = session.connection()  # Core deletes: no sync recording
    for table in reversed(metadata.sorted_tables):
        connection.execute(table.delete())


class Device:
    """A field client on its own SQLite file."""

    def __init__(self, name: str, directory: Path, encrypt: bool) -> None:
        self.name = name
        self.producer = f"tablet-{name}"
        self.encrypt = encrypt
        self.app = create_field_app(
            f"sqlite:///{directory / (name + '.sqlite')}", self.producer
        )
        self.encryption_key: str | None = None
        self.log: list[Recorded] = []
        self.records: dict[Key, tuple[dict[str, Any], int]] = {}

    def reset(self, server) -> None:
        """Start afresh: no records, no transactions, newly registered."""
        credential, self.encryption_key = register(server, self.producer, self.encrypt)
        with self.app.app_context():
            session = field_db.session
            empty(session, field_db.metadata)
            configure_producer(
                session, ProducerState, self.producer, self.encryption_key, credential
            )
            session.commit()
            session.remove()
        self.log = []
        self.records = {}

    def code(self, number: int) -> str:
        return f"{self.name.upper()}-H{number}"

    def identifier(self, number: int) -> str:
        return f"{self.name.upper()}-M{number}"

    def holds(self, model: type) -> bool:
        return any(key[0] == model.__name__ for key in self.records)

    def read_log(self) -> list[Recorded]:
        """Read the transactions committed since the last read; they never change."""
        with self.app.app_context():
            rows = field_db.session.scalars(
                select(OutgoingTransaction)
                .where(OutgoingTransaction.sequence > len(self.log))
                .order_by(OutgoingTransaction.sequence)
            )
            for row in rows:
                assert row.sequence == len(self.log) + 1, "a gap in the sequence"
                payload = open_payload(row, self.encryption_key)
                previous = payload.get("previous_natural_key")
                self.log.append(
                    Recorded(
                        row.sequence,
                        (row.model, row.natural_key),
                        row.action,
                        # The device's local primary key is no data of the record.
                        {
                            name: value
                            for name, value in payload["fields"].items()
                            if name not in payload.get("local_fields", ())
                        },
                        (row.model, canonical_json(previous)) if previous else None,
                    )
                )
            taken = field_db.session.scalar(select(ProducerState.next_sequence)) - 1
            field_db.session.remove()
        assert taken == len(self.log), "a sequence number taken but not recorded"
        self.records = replay(self.log)
        return self.log

    def unsent(self) -> int:
        with self.app.app_context():
            count = field_db.session.scalar(
                select(func.count(OutgoingTransaction.id)).where(
                    OutgoingTransaction.sent.is_(False)
                )
            )
            field_db.session.remove()
        return count


def find(session: Session, model: type, value: str) -> Any:
    column = getattr(model, model.__natural_key__[0])
    return session.scalar(select(model).where(column == value))


def keys_of(session: Session, model: type) -> list[str]:
    column = getattr(model, model.__natural_key__[0])
    return list(session.scalars(select(column).order_by(column)))


def step(method: Callable[..., None]) -> Callable[..., None]:
    """A rule or invariant; the run counts as failed until it returns, so that
    teardown settles and compares only after a run in which nothing failed."""

    @functools.wraps(method)
    def run(self: SyncHistories, *args: Any, **kwargs: Any) -> None:
        self.failed = True
        method(self, *args, **kwargs)
        self.failed = False

    return run


DEVICE = st.sampled_from(sorted(DEVICES))
HOUSEHOLD_NUMBER = st.integers(0, HOUSEHOLD_KEYS - 1)
MEMBER_NUMBER = st.integers(0, MEMBER_KEYS - 1)
VILLAGE = st.sampled_from(["Mochudi", "Gabane", "Kanye"])
INCOME = st.sampled_from([None, Decimal("12.50"), Decimal("0.00")])
NAME = st.sampled_from(["Ada", "Bo", "Chi"])
# One change in five is cut short: flushed, then the device dies before commit.
CRASH = st.integers(0, 4).map(lambda n: n == 4)
DEATH = st.one_of(
    st.none(),
    st.none(),
    st.builds(Death, at=st.integers(1, 6), durable=st.booleans()),
)
# Often as many as a push tries: it gives up, to try again later.
FAULTS = st.lists(
    st.one_of(
        st.just("ok"),
        st.just("lost request"),
        st.just("lost reply"),
        st.builds(Death, at=st.integers(1, 6), durable=st.booleans()),
    ),
    max_size=6,
)
TRIES = st.integers(1, NO_WAIT.attempts)
BATCH = st.integers(1, 4)


class SyncHistories(RuleBasedStateMachine):
    def __init__(self, server, devices: list[Device], relay, directory: Path) -> None:
        super().__init__()
        self.failed = False
        self.server = server
        self.settings = DeliverySettings.from_config(server.config)
        with server.app_context():
            empty(db.session, db.metadata)
            db.session.commit()
        self.devices = {device.name: device for device in devices}
        for device in devices:
            device.reset(server)
        self.relay = relay
        with relay.app_context():
            empty(field_db.session, field_db.metadata)
            field_db.session.commit()
            field_db.session.remove()
        publish_keys(server, relay)
        self.directory = Path(tempfile.mkdtemp(dir=directory))
        self.carried: list[str] = []  # exported file names, in export order
        self.exports = 0
        self.relay_holds = False  # bundles that may still need forwarding
        self.server_died = False  # deliveries that may still need applying

    # Changes on a device -------------------------------------------------

    def change(self, device: Device, make: Callable[[Session], None], crash: bool):
        """Make a change and commit it, or die after flushing it; either way the
        device's transactions must describe its records exactly."""
        before = device.read_log()[:]
        with device.app.app_context():
            session = field_db.session
            make(session)
            if crash:
                session.flush()
                session.rollback()
            else:
                session.commit()
            session.remove()
        after = device.read_log()
        if crash:
            assert after == before, "a change rolled back left a trace"
        recorded = {key: fields for key, (fields, _) in device.records.items()}
        assert recorded == field_records(device.app)

    def recorded(self) -> bool:
        """Whether any device has recorded a change yet."""
        return any(device.log for device in self.devices.values())

    def holders(self, model: type) -> list[str]:
        """The devices that hold at least one record of ``model``."""
        return [name for name, device in self.devices.items() if device.holds(model)]

    def holder(self, data, model: type) -> Device:
        """Draw one of the devices that hold a record of ``model``."""
        return self.devices[data.draw(st.sampled_from(self.holders(model)))]

    @rule(
        name=DEVICE,
        numbers=st.lists(HOUSEHOLD_NUMBER, min_size=1, max_size=3),
        village=VILLAGE,
        income=INCOME,
        crash=CRASH,
    )
    @step
    def insert_households(self, name, numbers, village, income, crash):
        device = self.devices[name]

        def make(session):
            for code in dict.fromkeys(device.code(number) for number in numbers):
                if find(session, Household, code) is None:
                    session.add(Household(code=code, village=village, income=income))

        self.change(device, make, crash)

    @precondition(lambda self: self.holders(Household))
    @rule(
        numbers=st.lists(MEMBER_NUMBER, min_size=1, max_size=3),
        person=NAME,
        data=st.data(),
        crash=CRASH,
    )
    @step
    def insert_members(self, numbers, person, data, crash):
        device = self.holder(data, Household)

        def make(session):
            codes = keys_of(session, Household)
            for identifier in dict.fromkeys(map(device.identifier, numbers)):
                if find(session, Member, identifier) is None:
                    household = find(
                        session, Household, data.draw(st.sampled_from(codes))
                    )
                    session.add(
                        Member(
                            identifier=identifier,
                            household_id=household.id,
                            name=person,
                        )
                    )

        self.change(device, make, crash)

    @precondition(lambda self: self.holders(Household))
    @rule(village=VILLAGE, income=INCOME, data=st.data(), crash=CRASH)
    @step
    def update_household(self, village, income, data, crash):
        def make(session):
            code = data.draw(st.sampled_from(keys_of(session, Household)))
            household = find(session, Household, code)
            household.village = village
            household.income = income

        self.change(self.holder(data, Household), make, crash)

    @precondition(lambda self: self.holders(Member))
    @rule(person=NAME, move=st.booleans(), data=st.data(), crash=CRASH)
    @step
    def update_member(self, person, move, data, crash):
        def make(session):
            identifier = data.draw(st.sampled_from(keys_of(session, Member)))
            member = find(session, Member, identifier)
            member.name = person
            if move:
                code = data.draw(st.sampled_from(keys_of(session, Household)))
                member.household_id = find(session, Household, code).id

        self.change(self.holder(data, Member), make, crash)

    @precondition(lambda self: self.holders(Household))
    @rule(
        household=st.booleans(),
        number=st.integers(0, MEMBER_KEYS - 1),
        data=st.data(),
        crash=CRASH,
    )
    @step
    def rename(self, household, number, data, crash):
        """Change a record's natural key to one not in use."""
        model = Household if household or not self.holders(Member) else Member
        device = self.holder(data, model)
        new_key = (
            device.code(number % HOUSEHOLD_KEYS)
            if model is Household
            else device.identifier(number)
        )

        def make(session):
            keys = keys_of(session, model)
            if new_key not in keys:
                record = find(session, model, data.draw(st.sampled_from(keys)))
                setattr(record, model.__natural_key__[0], new_key)

        self.change(device, make, crash)

    @precondition(lambda self: self.holders(Member))
    @rule(data=st.data(), crash=CRASH)
    @step
    def delete_member(self, data, crash):
        def make(session):
            identifier = data.draw(st.sampled_from(keys_of(session, Member)))
            session.delete(find(session, Member, identifier))

        self.change(self.holder(data, Member), make, crash)

    @precondition(lambda self: self.holders(Household))
    @rule(flush_members=st.booleans(), data=st.data(), crash=CRASH)
    @step
    def delete_household(self, flush_members, data, crash):
        """Delete a household with its members, in one commit."""

        def make(session):
            code = data.draw(st.sampled_from(keys_of(session, Household)))
            household = find(session, Household, code)
            for member in session.scalars(
                select(Member).where(Member.household_id == household.id)
            ):
                session.delete(member)
            if flush_members:
                session.flush()
            session.delete(household)

        self.change(self.holder(data, Household), make, crash)

    # Transfers -----------------------------------------------------------

    def server_dies(self, body: dict[str, Any], death: Death) -> None:
        """The server takes a pushed bundle as its push view does, and dies."""
        with self.server.app_context():
            session = db.session
            try:
                bundle = bundle_from_json(body)
                accept_push(
                    session, bundle, self.settings, death.around(session.commit)
                )
            except Crash:
                session.rollback()
        self.server_died = True

    def push(self, device, app, url, faults, tries, batch, death) -> None:
        die = self.server_dies if app is self.server else None
        transport = FlakyTransport(app, faults, die)
        with device.app.app_context():
            session = field_db.session
            try:
                push(
                    session,
                    OutgoingTransaction,
                    ProducerState,
                    url,
                    transport,
                    batch,
                    replace(NO_WAIT, attempts=tries),
                    commit=commit_for(session, death),
                )
            except (Unreachable, Crash):
                session.rollback()
            session.remove()

    @precondition(recorded)
    @rule(
        name=DEVICE,
        to_relay=st.booleans(),
        faults=FAULTS,
        tries=TRIES,
        batch=BATCH,
        death=DEATH,
    )
    @step
    def push_unsent(self, name, to_relay, faults, tries, batch, death):
        """Push to the server, or to the middleman, over a flaky network."""
        device = self.devices[name]
        if to_relay:
            self.push(device, self.relay, RELAY_URL, faults, tries, batch, death)
            self.relay_holds = True
        else:
            self.push(device, self.server, SERVER_URL, faults, tries, batch, death)

    def forward(
        self, faults: list[str | Death], tries: int, death: Death | None
    ) -> None:
        transport = FlakyTransport(self.server, faults, self.server_dies)
        with self.relay.app_context():
            session = field_db.session
            try:
                forward(
                    session,
                    RelayedBundle,
                    SERVER_URL,
                    transport,
                    replace(NO_WAIT, attempts=tries),
                    commit=commit_for(session, death),
                )
                self.relay_holds = False
            except (Unreachable, Crash):
                session.rollback()
            session.remove()

    @precondition(lambda self: self.relay_holds)
    @rule(faults=FAULTS, tries=TRIES, death=DEATH)
    @step
    def forward_from_relay(self, faults, tries, death):
        self.forward(faults, tries, death)

    @precondition(recorded)
    @rule(
        name=DEVICE,
        again_from=st.none() | st.integers(1, 12),
        death=DEATH,
    )
    @step
    def export_file(self, name, again_from, death):
        """Export what is new (or again from a sequence) to a carried file."""
        device = self.devices[name]
        self.exports += 1
        file_name = f"{device.producer}-{self.exports}.jsonl.gz"
        with device.app.app_context():
            session = field_db.session
            try:
                export(
                    session,
                    OutgoingTransaction,
                    ProducerState,
                    self.directory / file_name,
                    from_sequence=again_from,
                    commit=commit_for(session, death),
                )
            except Crash:
                session.rollback()  # the file was written, its export not noted
            session.remove()
        if (self.directory / file_name).exists():
            self.carried.append(file_name)

    def import_into_server(self, file_name: str, death: Death | None) -> None:
        with self.server.app_context():
            session = db.session
            try:
                import_file(
                    session,
                    self.directory / file_name,
                    self.settings,
                    commit_for(session, death),
                    self.server.config["SYNC_MAX_FILE_BYTES"],
                )
            except AlreadyImported:
                pass
            except Crash:
                session.rollback()
                self.server_died = True

    @precondition(lambda self: self.carried)
    @rule(into_relay=st.booleans(), data=st.data(), death=DEATH)
    @step
    def import_carried_file(self, into_relay, data, death):
        """Import any carried file, again or out of order, on the server or the
        middleman."""
        file_name = data.draw(st.sampled_from(self.carried))
        if not into_relay:
            self.import_into_server(file_name, death)
            return
        with self.relay.app_context():
            path = self.directory / file_name
            import_relay_file(field_db.session, RelayedBundle, path)
            field_db.session.commit()
        self.relay_holds = True

    @precondition(lambda self: self.carried)
    @rule(data=st.data())
    @step
    def lose_carried_file(self, data):
        """A carried file never arrives: pushes must still deliver it all."""
        file_name = data.draw(st.sampled_from(self.carried))
        self.carried.remove(file_name)
        (self.directory / file_name).unlink()

    @precondition(lambda self: self.server_died)
    @rule(death=DEATH)
    @step
    def apply_on_server(self, death):
        """The periodic apply, which picks up what a crash left received."""
        with self.server.app_context():
            try:
                apply_all(db.session, self.settings, commit_for(db.session, death))
                self.server_died = False
            except Crash:
                db.session.rollback()

    # What must hold ------------------------------------------------------

    def server_state(self) -> dict[str, Any]:
        with self.server.app_context():
            session = db.session
            state = {
                "records": {
                    (row.model, row.natural_key): (row.fields, row.version)
                    for row in session.scalars(
                        select(SyncRecord).where(SyncRecord.deleted.is_(None))
                    )
                },
                "producers": {
                    row.producer_id: row
                    for row in session.scalars(select(SyncProducer))
                },
                "statuses": dict(
                    session.execute(
                        select(IncomingTransaction.status, func.count()).group_by(
                            IncomingTransaction.status
                        )
                    ).all()
                ),
                "rejected": session.scalar(select(func.count(RejectedTransaction.id))),
            }
            session.expunge_all()
        return state

    @invariant()
    @step
    def the_server_holds_exactly_what_it_applied(self):
        """Every server record is a device's record as of the producer's applied
        cursor, with one version per transaction: none invented, none twice."""
        state = self.server_state()
        expected = {}
        for device in self.devices.values():
            producer = state["producers"][device.producer]
            assert producer.applied_through <= producer.received_through
            assert producer.received_through <= len(device.log)
            expected.update(replay(device.log[: producer.applied_through]))
        assert state["records"] == expected
        # A member only ever points to a household of its own device, which was
        # applied before it: nothing waits for a parent, nothing is parked.
        assert set(state["statuses"]) <= {RECEIVED, APPLIED}, state["statuses"]
        assert state["rejected"] == 0

    def teardown(self):
        try:
            if not self.failed:
                self.settle()
                self.check_converged()
        finally:
            shutil.rmtree(self.directory)

    def settle(self) -> None:
        """Every device comes online and every carried file reaches the server."""
        for device in self.devices.values():
            self.push(device, self.server, SERVER_URL, [], 1, 500, None)
            assert device.unsent() == 0
        self.forward([], 1, None)
        for file_name in self.carried:
            self.import_into_server(file_name, None)
        with self.server.app_context():
            apply_all(db.session, self.settings, db.session.commit)

    def check_converged(self) -> None:
        """The server holds the union of the devices' records, every change
        received, applied once and only once."""
        state = self.server_state()
        expected = {}
        for device in self.devices.values():
            log = device.read_log()
            producer = state["producers"][device.producer]
            cursors = (
                producer.received_through,
                producer.highest_received,
                producer.applied_through,
            )
            assert cursors == (len(log),) * 3, f"{device.producer} lost changes"
            expected.update(replay(log))
        total = sum(len(device.log) for device in self.devices.values())
        assert state["statuses"] == ({APPLIED: total} if total else {})
        assert state["rejected"] == 0
        assert state["records"] == expected  # so every version counts each change
        union = {}
        for device in self.devices.values():
            union.update(field_records(device.app))
        assert server_records(self.server) == union


SETTINGS = settings(max_examples=40, stateful_step_count=50, deadline=None)


def test_any_history_converges_to_the_devices_records(make_app, tmp_path):
    server = make_app(SYNC_MODELS=FIELD_MODELS, SYNC_APPLY_RUN_SIZE=APPLY_RUN_SIZE)
    with server.app_context():
        import_all_models()
        db.create_all()
    devices = [Device(name, tmp_path, encrypt) for name, encrypt in DEVICES.items()]
    relay = create_relay_app(f"sqlite:///{tmp_path / 'relay.sqlite'}")
    try:
        run_state_machine_as_test(
            lambda: SyncHistories(server, devices, relay, tmp_path),
            settings=SETTINGS,
        )
    finally:
        for app in (*(device.app for device in devices), relay):
            with app.app_context():
                field_db.session.remove()
                field_db.engine.dispose()

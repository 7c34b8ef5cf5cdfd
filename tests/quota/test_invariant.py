"""What clients may create never exceeds the target: a property test over random
schedules of creations (one by one and in bulk), pulls, check-ins, clients going
offline, lost and late messages, crashes and restarts of the controller, device
clocks off by up to the bound, time passing (leases and codes run out),
reinstalled devices, overrides and changes of the target and of clients.

The field clients are real field applications embedding the quota toolkit, each
on its own SQLite file, reached in process through their blueprint (and the
controller's check-in API through its test client); the controller is the real
tracker application. Only the clocks are simulated: one "real" time that the
controller reads, and per device an offset within the bound."""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import hypothesis.strategies as st
from flask import Flask
from hypothesis import settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, insert, select

from quota.admin import AdminRefused, update_client, update_quota
from quota.client import (
    CheckInFailed,
    QuotaNotSetOrExpiredError,
    QuotaReachedError,
    check_in,
)
from quota.client.codes import Approval
from quota.client.models import effective_ceiling
from quota.controller import (
    Address,
    CeilingRefused,
    Controller,
    Policy,
    QuotaNotActive,
    TransportError,
    assumed_ceiling,
    check_report,
    outstanding_by_client,
)
from quota.models import ControllerQuota, QuotaClient
from quota.overrides import OverrideRefused, approve
from tests.quota.field_app import (
    Quota,
    QuotaOverride,
    Visit,
    create_field_app,
    field_db,
)
from tracker import create_app
from tracker.extensions import db
from tracker.models import import_all_models

KIND = "visit"
NAMES = ("a", "b", "c")
TARGET = 20
START = 1_900_000_000  # the simulated "real" time at the start, Unix seconds
MAX_SKEW = 3600
POLICY = Policy(
    reserve=2,
    floor=2,
    lease=timedelta(hours=6),
    max_skew=timedelta(seconds=MAX_SKEW),
)
CODE_HOURS = 2
LEASE = int(POLICY.lease.total_seconds())
REQUEST_CODE = re.compile(r"id='request-code'>([^<]+)<")


class Crash(Exception):
    """The controller process dies here."""


class Clocks:
    """The real time the controller reads, and each device's offset from it;
    the device clock of whichever device is being called."""

    def __init__(self) -> None:
        self.now = START
        self.offset = dict.fromkeys(NAMES, 0)
        self.current: str | None = None
        self.lock = threading.RLock()

    def controller(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    def device(self) -> int:
        return self.now + (self.offset[self.current] if self.current else 0)

    @contextmanager
    def on(self, name: str):
        """Run on device ``name``: its clock, one call at a time."""
        with self.lock:
            before, self.current = self.current, name
            try:
                yield
            finally:
                self.current = before


class FieldClient:
    """A field application and the person using it."""

    def __init__(self, name: str, app: Flask, clocks: Clocks) -> None:
        self.name = name
        self.secret = f"secret-{name}"
        self.app = app
        self.clocks = clocks
        self.web = app.test_client()
        self.earlier = 0  # records made by installs since wiped

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}

    def reset(self) -> None:
        """No records, no quota, no override: a fresh install."""
        with self.app.app_context():
            connection = field_db.session.connection()
            for table in reversed(field_db.metadata.sorted_tables):
                connection.execute(table.delete())
            field_db.session.commit()
            field_db.session.remove()

    def reinstall(self) -> None:
        self.earlier += self.state()["visits"]
        self.reset()

    def create(self, times: int, bulk: bool) -> None:
        """Create up to ``times`` visits, one by one (the first refusal stops the
        person) or in one bulk insert (all or nothing)."""
        with self.clocks.on(self.name), self.app.app_context():
            session = field_db.session
            try:
                if bulk:
                    session.execute(insert(Visit), [{"subject": "b"}] * times)
                    session.commit()
                else:
                    for _ in range(times):
                        session.add(Visit())
                        session.commit()
            except (QuotaReachedError, QuotaNotSetOrExpiredError):
                session.rollback()
            session.remove()

    def call(self, method: str, body: dict | None = None) -> tuple[int, Any]:
        with self.clocks.on(self.name):
            response = self.web.open(
                f"/quota/{KIND}", method=method, json=body, headers=self.auth()
            )
        return response.status_code, response.get_json()

    def request_code(self) -> str:
        with self.clocks.on(self.name):
            page = self.web.get(f"/quota/{KIND}/override").get_data(as_text=True)
        return REQUEST_CODE.search(page).group(1)

    def enter(self, approval_code: str) -> None:
        with self.clocks.on(self.name):
            response = self.web.post(
                f"/quota/{KIND}/override", data={"code": approval_code}
            )
        assert response.status_code == 200

    def check_in(self, controller: Flask, fault: str) -> None:
        """``flask quota checkin``, through the controller's real API."""
        web = controller.test_client()

        def post(url, json, headers, timeout, allow_redirects):
            if fault == "lose-request":
                raise CheckInFailed("unreachable")
            response = web.post(url.split("://", 1)[-1], json=json, headers=headers)
            if fault == "lose-reply":
                raise CheckInFailed("reply lost")
            return Answer(response)

        with self.clocks.on(self.name), self.app.app_context():
            try:
                check_in(
                    field_db.session,
                    Quota,
                    QuotaOverride,
                    self.name,
                    self.secret,
                    KIND,
                    "",
                    post=post,
                )
                field_db.session.commit()
            except CheckInFailed:
                field_db.session.rollback()
            field_db.session.remove()

    def state(self) -> dict[str, Any]:
        """The quota row and the visits, as the field database holds them."""
        with self.app.app_context():
            session = field_db.session
            row = session.scalar(select(Quota).where(Quota.record_kind == KIND))
            used = set(
                session.scalars(
                    select(QuotaOverride.nonce).where(QuotaOverride.extra > 0)
                )
            )
            open_requests = set(
                session.scalars(
                    select(QuotaOverride.nonce).where(QuotaOverride.extra == 0)
                )
            )
            state = {
                "visits": session.scalar(select(func.count(Visit.id))),
                "row": None
                if row is None
                else (row.ceiling, row.count, row.confirmed, row.lease_expires),
                "used": used,
                "open_requests": open_requests,
            }
            session.remove()
        return state


class Answer:
    """A test client's response, as the toolkit reads a requests response."""

    def __init__(self, response) -> None:
        self.status_code = response.status_code
        self._json = response.get_json()

    def json(self):
        if self._json is None:
            raise ValueError("not JSON")
        return self._json


class InProcessNetwork:
    """Carries the controller's calls to the field clients' blueprints; a call
    may lose its request or its reply, arrive late, or the controller may die
    making it, as the test's plan for that client says."""

    def __init__(self, fields, offline, faults, late) -> None:
        self.fields = fields
        self.offline = offline
        self.faults = {name: list(faults.get(name, ())) for name in fields}
        self.late = late

    def _deliver(self, client: Address, method: str, body=None) -> dict:
        field = self.fields[client.name]
        plan = self.faults[client.name]
        fault = plan.pop(0) if plan else "ok"
        if client.name in self.offline or fault == "lose-request":
            raise TransportError("unreachable")
        if fault == "crash":
            raise Crash()
        if fault == "late" and method == "PUT":
            self.late.append((client.name, body))
            raise TransportError("no answer yet")
        status, data = field.call(method, body)
        if fault == "lose-reply":
            raise TransportError("reply lost")
        if status == 409 and isinstance(data, dict) and "count" in data:
            raise CeilingRefused(data["count"])
        if status != 200:
            raise TransportError(f"HTTP {status}")
        report = check_report(data)
        report["_received"] = field.clocks.now
        return report

    def get(self, client: Address, kind: str) -> dict[str, Any]:
        return self._deliver(client, "GET")

    def put(self, client: Address, kind: str, body: dict[str, Any]) -> dict:
        return self._deliver(client, "PUT", body)


FAULT = st.sampled_from(["ok", "ok", "lose-request", "lose-reply", "late", "crash"])
# Half the pulls go through cleanly: the field must get ceilings and use them
# (records made, then wiped, leases running out) for faults to matter.
FAULTS = st.one_of(
    st.just({}),
    st.fixed_dictionaries({name: st.lists(FAULT, max_size=4) for name in NAMES}),
)
NAME = st.sampled_from(NAMES)


class QuotaSchedule(RuleBasedStateMachine):
    def __init__(self, controller: Flask, fields: dict[str, FieldClient], clocks):
        super().__init__()
        self.controller = controller
        self.field = fields
        self.clocks = clocks
        clocks.now = START
        clocks.offset = dict.fromkeys(NAMES, 0)
        self.context = controller.app_context()
        self.context.push()
        connection = db.session.connection()
        for table in reversed(db.metadata.sorted_tables):
            connection.execute(table.delete())
        db.session.commit()
        for field in fields.values():
            field.reset()
            field.earlier = 0
        start = clocks.controller() - timedelta(days=1)
        quota = ControllerQuota(
            record_kind=KIND,
            target=TARGET,
            window_start=start,
            window_expires=start + timedelta(days=90),
        )
        for name, field in fields.items():
            quota.clients.append(
                QuotaClient(name=name, endpoint=f"http://{name}", secret=field.secret)
            )
        db.session.add(quota)
        db.session.commit()
        self.offline: set[str] = set()
        self.late: list[tuple[str, dict]] = []
        self.codes: list[tuple[str, str, Approval]] = []

    def quota(self) -> ControllerQuota:
        return db.session.scalar(select(ControllerQuota))

    def controller_for(self, faults) -> Controller:
        return Controller(
            db.session,
            self.quota(),
            InProcessNetwork(self.field, self.offline, faults, self.late),
            self.commit_and_check,
            now=self.clocks.controller,
            policy=POLICY,
        )

    @initialize(
        offsets=st.fixed_dictionaries(
            {name: st.integers(-MAX_SKEW, MAX_SKEW) for name in NAMES}
        )
    )
    def in_the_field(self, offsets):
        """Device clocks are off within the bound from the start, as in the
        field, and a first pull gives every device a leased ceiling."""
        self.clocks.offset.update(offsets)
        self.controller_for({}).pull()

    @rule(name=NAME, times=st.integers(1, 12), bulk=st.booleans())
    def create(self, name, times, bulk):
        """The person creates records; the device refuses past its ceiling in
        force (the leased one until its lease ends, on the device's clock)."""
        field = self.field[name]
        allowed = self.may_create(name, field.state())
        field.create(times, bulk)
        assert field.earlier + field.state()["visits"] <= allowed, (name, allowed)

    @rule(name=NAME)
    def toggle_online(self, name):
        self.offline ^= {name}

    # Within a lease, a lease's end, and half an hour past it (still within the
    # clock bound, where a slow device may use what the controller's clock says
    # is over), and a day.
    @rule(seconds=st.sampled_from([60, 1800, 3 * 3600, LEASE, LEASE + 1800, 86400]))
    def time_passes(self, seconds):
        self.clocks.now += seconds

    @rule(name=NAME, offset=st.integers(-MAX_SKEW, MAX_SKEW))
    def device_clock_drifts(self, name, offset):
        self.clocks.offset[name] = offset

    @rule(faults=FAULTS)
    def pull(self, faults):
        try:
            self.controller_for(faults).pull()
        except Crash:
            self.restart()
        except QuotaNotActive:
            db.session.rollback()

    @rule(name=NAME, fault=st.sampled_from(["ok", "ok", "lose-request", "lose-reply"]))
    def check_in(self, name, fault):
        db.session.commit()  # the controller's requests use their own sessions
        self.field[name].check_in(self.controller, fault)

    @precondition(lambda self: self.late)
    @rule(data=st.data())
    def late_message_arrives(self, data):
        name, body = self.late.pop(data.draw(st.integers(0, len(self.late) - 1)))
        self.field[name].call("PUT", body)

    @rule()
    def restart(self):
        """The controller dies: whatever was not committed is gone."""
        db.session.rollback()
        db.session.remove()

    @rule(name=NAME)
    def reinstall(self, name):
        """The device's database is wiped; the app is installed again."""
        self.field[name].reinstall()

    @rule(name=NAME, extra=st.integers(1, 6))
    def approve_override(self, name, extra):
        request = self.field[name].request_code()
        try:
            approved = approve(
                db.session,
                self.quota(),
                request,
                extra,
                self.clocks.controller(),
                timedelta(hours=CODE_HOURS),
                max_skew=POLICY.max_skew,
            )
        except OverrideRefused:
            db.session.rollback()
            return
        db.session.commit()
        from quota.client.codes import _decode

        payload = _decode(approved.code.partition(".")[0])
        self.codes.append((name, approved.code, Approval(**payload)))

    @precondition(lambda self: self.codes)
    @rule(data=st.data())
    def enter_code(self, data):
        """The field user types in an approved code, perhaps once more."""
        name, code, _approval = data.draw(st.sampled_from(self.codes))
        self.field[name].enter(code)

    @rule(change=st.integers(-30, 30))
    def change_target(self, change):
        quota = self.quota()
        try:
            update_quota(db.session, quota, max(1, quota.target + change))
        except AdminRefused:
            db.session.rollback()
            return
        db.session.commit()

    @rule(
        name=NAME,
        weight=st.sampled_from([0.0, 1.0, 3.0]),
        maximum=st.sampled_from([None, 0, 5, 15]),
        active=st.booleans(),
    )
    def administer_client(self, name, weight, maximum, active):
        quota = self.quota()
        client = next(c for c in quota.clients if c.name == name)
        update_client(db.session, quota, client, weight, maximum, active)
        db.session.commit()

    def may_create(self, name: str, state: dict[str, Any]) -> int:
        """The most device ``name`` may ever have created, from what it holds
        now: its records, its room, raises still on their way, codes it may
        still apply."""
        field = self.field[name]
        device_now = self.clocks.now + self.clocks.offset[name]
        count, ceiling = 0, 0
        if state["row"] is not None:
            stored, count, confirmed, lease = state["row"]
            ceiling = effective_ceiling(stored, confirmed, lease, device_now)
        for late_name, body in self.late:
            lease = body.get("lease_expires")
            if late_name == name and (not lease or lease > device_now):
                ceiling = max(ceiling, body["ceiling"])
        extra = sum(
            approval.extra
            for code_name, _code, approval in self.codes
            if code_name == name
            and approval.nonce in state["open_requests"]
            and approval.issued - approval.max_skew <= device_now < approval.expires
        )
        return field.earlier + max(count, ceiling) + extra

    def commit_and_check(self) -> None:
        """The controller's commit: the controller may die right after any of
        them, so what it committed must keep the invariant, not only the state
        at the end of a pull."""
        db.session.commit()
        self.never_over_target()

    @invariant()
    def never_over_target(self):
        target = db.session.scalar(select(ControllerQuota.target))
        db.session.commit()
        states = {name: field.state() for name, field in self.field.items()}
        for state in states.values():
            count = state["row"][1] if state["row"] else 0
            assert count == state["visits"]
        created = sum(
            self.field[name].earlier + state["visits"] for name, state in states.items()
        )
        assert created <= target
        may = {name: self.may_create(name, state) for name, state in states.items()}
        assert sum(may.values()) <= target, (may, target)
        # Stronger, and broken long before the target is: the controller never
        # assumes a client may create less than the device really may, but for
        # what it holds for wiped installs (the quota's retired records).
        assumed, retired = self.controller_assumes()
        short = {name: max(0, may[name] - assumed[name]) for name in NAMES}
        assert sum(short.values()) <= retired, (may, assumed, retired)

    def controller_assumes(self) -> tuple[dict[str, int], int]:
        """What the controller's records say each client may create at most,
        and what it holds for installs of them since wiped."""
        quota = self.quota()
        outstanding = outstanding_by_client(db.session, quota)
        assumed = {
            c.name: assumed_ceiling(db.session, c, outstanding.get(c.id, 0))
            for c in quota.clients
        }
        retired = quota.retired
        db.session.commit()
        return assumed, retired

    def teardown(self):
        db.session.remove()
        self.context.pop()


SETTINGS = settings(max_examples=120, stateful_step_count=40, deadline=None)


def run_schedules(tmp_path, machine_settings=SETTINGS) -> None:
    """Run the state machine over the real controller and three field apps."""
    import_all_models()
    controller = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "invariant",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'controller.sqlite'}",
            "QUOTA_OVERRIDE_RESERVE": POLICY.reserve,
            "QUOTA_FAIR_FLOOR": POLICY.floor,
            "QUOTA_LEASE_HOURS": 6,
            "QUOTA_MAX_CLOCK_SKEW": MAX_SKEW,
        },
        instance_path=tmp_path / "instance",
        environ={},
    )
    with controller.app_context():
        db.create_all()
    clocks = Clocks()
    fields = {
        name: FieldClient(
            name,
            create_field_app(
                f"sqlite:///{tmp_path / name}.sqlite", name, f"secret-{name}"
            ),
            clocks,
        )
        for name in NAMES
    }
    try:
        with patched_clocks(clocks):
            run_state_machine_as_test(
                lambda: QuotaSchedule(controller, fields, clocks),
                settings=machine_settings,
            )
    finally:
        for field in fields.values():
            with field.app.app_context():
                field_db.session.remove()
                field_db.engine.dispose()
        with controller.app_context():
            db.engine.dispose()


@contextmanager
def patched_clocks(clocks: Clocks):
    """Devices read the simulated clock (a device clock cannot run here)."""
    import quota.client.clock as device_clock

    real = device_clock.now_timestamp
    device_clock.now_timestamp = clocks.device
    try:
        yield
    finally:
        device_clock.now_timestamp = real


def test_quota_schedules(tmp_path):
    run_schedules(tmp_path)

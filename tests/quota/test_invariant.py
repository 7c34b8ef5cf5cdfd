"""The overall target is never exceeded: a property test over random schedules of
creations, pulls, clients going offline, lost requests and replies, overrides,
crashes and restarts of the controller."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from quota.client.codes import (
    InvalidCode,
    OverrideRequest,
    override_key,
    verify_approval,
)
from quota.controller import Address, CeilingRefused, Controller, TransportError
from quota.models import ControllerQuota, QuotaClient
from quota.overrides import OverrideRefused, approve
from tracker.extensions import db
from tracker.models import import_all_models

KIND = "visit"
NOW = datetime(2026, 6, 1, tzinfo=UTC)


class Crash(Exception):
    """The controller process dies here."""


class FieldClient:
    """A field client as the toolkit behaves: absolute ceiling, counted inserts."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.secret = f"secret-{name}"
        self.ceiling = 0
        self.count = 0
        self.online = True
        self.used: list[str] = []

    def create(self) -> bool:
        if self.count < self.ceiling:
            self.count += 1
            return True
        return False

    def report(self) -> dict:
        return {
            "record_kind": KIND,
            "ceiling": self.ceiling,
            "count": self.count,
            "used_overrides": list(self.used),
        }


class FlakyTransport:
    """Delivers to FieldClients; each call may lose its request or its reply,
    or crash the controller, as the test's plan says."""

    def __init__(self, clients: dict[str, FieldClient], faults: list[str]) -> None:
        self.clients = clients
        self.faults = list(faults)

    def _fault(self) -> str:
        return self.faults.pop(0) if self.faults else "ok"

    def get(self, client: Address, kind: str) -> dict:
        field = self.clients[client.name]
        fault = self._fault()
        if not field.online or fault == "lose-request":
            raise TransportError("unreachable")
        if fault == "crash":
            raise Crash()
        report = field.report()
        if fault == "lose-reply":
            raise TransportError("reply lost")
        return report

    def put(self, client: Address, kind: str, body: dict) -> dict:
        field = self.clients[client.name]
        fault = self._fault()
        if not field.online or fault == "lose-request":
            raise TransportError("unreachable")
        if fault == "crash":
            raise Crash()
        if body["ceiling"] < field.count:
            raise CeilingRefused(field.count)
        field.ceiling = body["ceiling"]
        if fault == "lose-reply":
            raise TransportError("reply lost")
        return field.report()


FAULTS = st.lists(
    st.sampled_from(["ok", "ok", "ok", "lose-request", "lose-reply", "crash"]),
    max_size=12,
)


class QuotaSchedule(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        import_all_models()
        self.engine = create_engine(
            "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
        db.metadata.create_all(self.engine)
        self.session = Session(self.engine)
        self.target = 30
        quota = ControllerQuota(
            record_kind=KIND,
            target=self.target,
            window_start=NOW - timedelta(days=1),
            window_expires=NOW + timedelta(days=30),
        )
        self.field = {name: FieldClient(name) for name in ("a", "b", "c")}
        for name, field in self.field.items():
            quota.clients.append(
                QuotaClient(name=name, endpoint=f"http://{name}", secret=field.secret)
            )
        self.session.add(quota)
        self.session.commit()
        self.pending_codes: list[tuple[str, str]] = []

    def quota(self) -> ControllerQuota:
        return self.session.scalar(select(ControllerQuota))

    @rule(name=st.sampled_from("abc"), times=st.integers(1, 15))
    def create(self, name, times):
        for _ in range(times):
            self.field[name].create()

    @rule(name=st.sampled_from("abc"))
    def toggle_online(self, name):
        self.field[name].online = not self.field[name].online

    @rule(faults=FAULTS)
    def pull(self, faults):
        controller = Controller(
            self.session,
            self.quota(),
            FlakyTransport(self.field, faults),
            self.session.commit,
            now=lambda: NOW,
        )
        try:
            controller.pull()
        except Crash:
            self.restart()

    @rule()
    def restart(self):
        """The controller dies: whatever was not committed is gone."""
        self.session.rollback()
        self.session.close()
        self.session = Session(self.engine)

    @rule(name=st.sampled_from("abc"), extra=st.integers(1, 10))
    def approve_override(self, name, extra):
        field = self.field[name]
        request = OverrideRequest.new(name, KIND, field.count).code()
        try:
            code = approve(
                self.session, self.quota(), request, extra, NOW, timedelta(hours=1)
            )
        except OverrideRefused:
            self.session.rollback()
            return
        self.session.commit()
        self.pending_codes.append((name, code))

    @rule(data=st.data())
    def enter_code(self, data):
        if not self.pending_codes:
            return
        index = data.draw(st.integers(0, len(self.pending_codes) - 1))
        name, code = self.pending_codes[index]
        field = self.field[name]
        try:
            approval = verify_approval(
                code, override_key(field.secret), name, KIND, now=NOW
            )
        except InvalidCode:
            return
        if approval.nonce in field.used:
            return  # single use, as the client's unique nonce enforces
        field.used.append(approval.nonce)
        field.ceiling += approval.extra

    @invariant()
    def never_over_target(self):
        assert sum(f.count for f in self.field.values()) <= self.target
        assert sum(f.ceiling for f in self.field.values()) <= self.target

    def teardown(self):
        self.session.close()
        self.engine.dispose()


QuotaSchedule.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_quota_schedules = QuotaSchedule.TestCase

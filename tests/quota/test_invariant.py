"""The overall target is never exceeded: a property test over random schedules of
creations, pulls, clients going offline, lost requests and replies, overrides,
crashes and restarts of the controller.

The field clients are real field applications embedding the quota toolkit, each
on its own SQLite file and loopback address; the controller reaches them over
HTTP through its own transport, with a network that loses what the test says."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import hypothesis.strategies as st
from flask import Flask
from hypothesis import settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from quota.client import QuotaNotSetOrExpiredError, QuotaReachedError
from quota.controller import Address, Controller, HttpTransport, TransportError
from quota.models import ControllerQuota, QuotaClient
from quota.overrides import OverrideRefused, approve
from tests.quota.field_app import Quota, Visit, create_field_app, field_db
from tests.support import serve
from tracker.extensions import db
from tracker.models import import_all_models

KIND = "visit"
NAMES = ("a", "b", "c")
TARGET = 30
REQUEST_CODE = re.compile(r"id='request-code'>([^<]+)<")
# Ceiling and count of the quota (none before the first ceiling), and visits.
STATE = select(
    select(Quota.ceiling)
    .where(Quota.record_kind == KIND)
    .scalar_subquery()
    .label("ceiling"),
    select(Quota.count)
    .where(Quota.record_kind == KIND)
    .scalar_subquery()
    .label("count"),
    select(func.count(Visit.id)).scalar_subquery().label("visits"),
)


class Crash(Exception):
    """The controller process dies here."""


class FlakyNetwork:
    """Carries the controller's calls to the field clients over HTTP; each call
    may lose its request or its reply, or the controller may die making it, as
    the test's plan for that client says; a client offline answers nothing."""

    def __init__(self, offline: set[str], faults: dict[str, list[str]]) -> None:
        self.http = HttpTransport(timeout=10)
        self.offline = offline
        # One plan per client: the controller calls clients from several
        # threads, but each client's calls come one after another.
        self.faults = {name: list(plan) for name, plan in faults.items()}

    def _deliver(self, client: Address, call: Callable[[], dict]) -> dict:
        plan = self.faults[client.name]
        fault = plan.pop(0) if plan else "ok"
        if client.name in self.offline or fault == "lose-request":
            raise TransportError("unreachable")
        if fault == "crash":
            raise Crash()
        answer = call()
        if fault == "lose-reply":
            raise TransportError("reply lost")
        return answer

    def get(self, client: Address, kind: str) -> dict[str, Any]:
        return self._deliver(client, lambda: self.http.get(client, kind))

    def put(self, client: Address, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._deliver(client, lambda: self.http.put(client, kind, body))


class FieldClient:
    """A field application served on loopback, and the person using it."""

    def __init__(self, name: str, app: Flask, url: str) -> None:
        self.name = name
        self.secret = f"secret-{name}"
        self.app = app
        self.url = url
        self.page = app.test_client()
        with app.app_context():
            self.engine = field_db.engine

    def reset(self) -> None:
        """No records, no quota, no override used."""
        with self.app.app_context():
            connection = field_db.session.connection()
            for table in reversed(field_db.metadata.sorted_tables):
                connection.execute(table.delete())
            field_db.session.commit()
            field_db.session.remove()

    def create(self, times: int) -> None:
        """Create up to ``times`` visits one after another; the first refused
        stops the person (nothing changes the quota in between)."""
        with self.app.app_context():
            for _ in range(times):
                field_db.session.add(Visit())
                try:
                    field_db.session.commit()
                except (QuotaReachedError, QuotaNotSetOrExpiredError):
                    field_db.session.rollback()
                    break
            field_db.session.remove()

    def request_code(self) -> str:
        """The request code the override page shows."""
        page = self.page.get(f"/quota/{KIND}/override").get_data(as_text=True)
        return REQUEST_CODE.search(page).group(1)

    def enter(self, approval_code: str) -> None:
        """Type the supervisor's approval code into the override page."""
        response = self.page.post(
            f"/quota/{KIND}/override", data={"code": approval_code}
        )
        assert response.status_code == 200

    def state(self) -> tuple[int, int, int]:
        """Ceiling, count and visits, as the field database holds them."""
        with self.engine.connect() as connection:
            row = connection.execute(STATE).one()
        return row.ceiling or 0, row.count or 0, row.visits


def empty(session: Session) -> None:
    """Delete every row, children first: a fresh database, quicker than new ones."""
    connection = session.connection()
    for table in reversed(db.metadata.sorted_tables):
        connection.execute(table.delete())
    session.commit()


FAULT = st.sampled_from(["ok", "ok", "ok", "lose-request", "lose-reply", "crash"])
FAULTS = st.fixed_dictionaries({name: st.lists(FAULT, max_size=4) for name in NAMES})


class QuotaSchedule(RuleBasedStateMachine):
    def __init__(self, engine, fields: dict[str, FieldClient]) -> None:
        super().__init__()
        self.engine = engine
        self.field = fields
        self.now = datetime.now(UTC)
        self.session = Session(self.engine)
        empty(self.session)
        for field in fields.values():
            field.reset()
        start, expires = self.now - timedelta(days=1), self.now + timedelta(days=30)
        quota = ControllerQuota(
            record_kind=KIND, target=TARGET, window_start=start, window_expires=expires
        )
        for name, field in fields.items():
            quota.clients.append(
                QuotaClient(name=name, endpoint=field.url, secret=field.secret)
            )
        self.session.add(quota)
        self.session.commit()
        # Every client starts as a first contact leaves it: its window open and
        # a ceiling of 0, so that an approved override counts from the start.
        opened = {
            "ceiling": 0,
            "window_start": int(start.timestamp()),
            "window_expires": int(expires.timestamp()),
        }
        for client in quota.clients:
            HttpTransport(timeout=10).put(Address.of(client), KIND, opened)
        self.offline: set[str] = set()
        self.pending_codes: list[tuple[str, str]] = []

    def quota(self) -> ControllerQuota:
        return self.session.scalar(select(ControllerQuota))

    @rule(name=st.sampled_from(NAMES), times=st.integers(1, 15))
    def create(self, name, times):
        self.field[name].create(times)

    @rule(name=st.sampled_from(NAMES))
    def toggle_online(self, name):
        self.offline ^= {name}

    @rule(faults=FAULTS)
    def pull(self, faults):
        controller = Controller(
            self.session,
            self.quota(),
            FlakyNetwork(self.offline, faults),
            self.session.commit,
            now=lambda: self.now,
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

    @rule(name=st.sampled_from(NAMES), extra=st.integers(1, 10))
    def approve_override(self, name, extra):
        request = self.field[name].request_code()
        try:
            code = approve(
                self.session, self.quota(), request, extra, self.now, timedelta(hours=1)
            )
        except OverrideRefused:
            self.session.rollback()
            return
        self.session.commit()
        self.pending_codes.append((name, code))

    @rule(data=st.data())
    def enter_code(self, data):
        """The field user types in an approved code, perhaps once more: the
        client takes each code once."""
        if not self.pending_codes:
            return
        index = data.draw(st.integers(0, len(self.pending_codes) - 1))
        name, code = self.pending_codes[index]
        self.field[name].enter(code)

    @invariant()
    def never_over_target(self):
        states = [field.state() for field in self.field.values()]
        assert all(count == visits for _, count, visits in states)
        assert sum(count for _, count, _ in states) <= TARGET
        assert sum(ceiling for ceiling, _, _ in states) <= TARGET

    def teardown(self):
        self.session.close()


SETTINGS = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_quota_schedules(tmp_path):
    from tracker.crypto import keyring, use_keyring

    import_all_models()
    # The controller's session has no app: its client secrets need a key.
    use_keyring(keyring({"SECRET_KEY": "invariant-tests-secret-of-32-bytes"}))
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    db.metadata.create_all(engine)
    fields = {}
    try:
        with ExitStack() as served:
            for number, name in enumerate(NAMES, start=1):
                database_url = f"sqlite:///{tmp_path / name}.sqlite"
                app = create_field_app(database_url, name, f"secret-{name}")
                url = served.enter_context(serve(app, f"127.0.62.{number}"))
                fields[name] = FieldClient(name, app, url)
            run_state_machine_as_test(
                lambda: QuotaSchedule(engine, fields), settings=SETTINGS
            )
    finally:
        for field in fields.values():
            with field.app.app_context():
                field_db.session.remove()
                field_db.engine.dispose()
        engine.dispose()

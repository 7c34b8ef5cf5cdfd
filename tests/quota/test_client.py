"""The field toolkit: atomic ceilings, the controller's blueprint, override codes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from quota.client import InvalidCode, QuotaNotSetOrExpiredError, QuotaReachedError
from quota.client.codes import (
    Approval,
    OverrideRequest,
    approval_code,
    override_key,
)
from tests.quota.field_app import Quota, Visit, create_field_app, field_db

ROOT = Path(__file__).resolve().parents[2]
SECRET = "field-secret"


@pytest.fixture
def field(empty_database_url):
    """The field application on an empty database of its own."""
    app = create_field_app(empty_database_url, "clinic-1", SECRET)
    yield app
    with app.app_context():
        field_db.drop_all()
        field_db.engine.dispose()


def open_window(ceiling: int, start: int | None = None, expires: int | None = None):
    now = int(time.time())
    field_db.session.add(
        Quota(
            record_kind="visit",
            ceiling=ceiling,
            count=0,
            window_start=now - 60 if start is None else start,
            window_expires=now + 3600 if expires is None else expires,
        )
    )
    field_db.session.commit()


def visits() -> int:
    return field_db.session.scalar(select(func.count(Visit.id)))


def test_inserts_stop_at_the_ceiling(field):
    with field.app_context():
        open_window(3)
        for _ in range(3):
            field_db.session.add(Visit())
            field_db.session.commit()
        field_db.session.add(Visit())
        with pytest.raises(QuotaReachedError):
            field_db.session.commit()
        field_db.session.rollback()
        quota = field_db.session.scalar(select(Quota))
        assert (visits(), quota.model_count, quota.target) == (3, 3, 3)


@pytest.mark.parametrize("window", ["missing", "expired", "future"])
def test_no_open_window_refuses_and_stores_nothing(field, window):
    now = int(time.time())
    with field.app_context():
        if window == "expired":
            open_window(10, now - 7200, now - 3600)
        elif window == "future":
            open_window(10, now + 3600, now + 7200)
        field_db.session.add(Visit())
        with pytest.raises(QuotaNotSetOrExpiredError):
            field_db.session.commit()
        field_db.session.rollback()
        assert visits() == 0


def test_a_rolled_back_insert_gives_its_count_back(field):
    with field.app_context():
        open_window(1)
        field_db.session.add(Visit())
        field_db.session.flush()
        field_db.session.rollback()
        field_db.session.add(Visit())
        field_db.session.commit()
        assert visits() == 1


def test_concurrent_threads_stop_exactly_at_the_ceiling(field):
    with field.app_context():
        open_window(20)
    outcomes = []

    def attempt():
        with field.app_context():
            for _ in range(10):
                field_db.session.add(Visit())
                try:
                    field_db.session.commit()
                    outcomes.append("created")
                except QuotaReachedError:
                    field_db.session.rollback()
                    outcomes.append("refused")

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("created") == 20
    with field.app_context():
        assert visits() == 20


def test_concurrent_processes_stop_exactly_at_the_ceiling(field, empty_database_url):
    with field.app_context():
        open_window(15)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.quota.insert_many", empty_database_url, "10"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    created = [int(p.communicate(timeout=120)[0].strip()) for p in processes]
    assert sum(created) == 15
    with field.app_context():
        assert visits() == 15


def auth(secret=SECRET):
    return {"Authorization": f"Bearer {secret}"}


def test_blueprint_reports_and_sets_ceilings(field):
    client = field.test_client()
    now = int(time.time())
    body = {"ceiling": 5, "window_start": now - 10, "window_expires": now + 3600}
    assert client.put("/quota/visit", json=body, headers=auth()).status_code == 200
    with field.app_context():
        for _ in range(4):
            field_db.session.add(Visit())
            field_db.session.commit()
    state = client.get("/quota/visit", headers=auth()).get_json()
    assert (state["ceiling"], state["count"]) == (5, 4)
    lower = client.put("/quota/visit", json={**body, "ceiling": 3}, headers=auth())
    assert lower.status_code == 409
    assert lower.get_json()["count"] == 4
    assert client.get("/quota/visit", headers=auth()).get_json()["ceiling"] == 5


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        ({"ceiling": -1, "window_start": 0, "window_expires": 9}, "ceiling"),
        ({"ceiling": "5", "window_start": 0, "window_expires": 9}, "ceiling"),
        ({"ceiling": 5, "window_start": 10, "window_expires": 9}, "window_expires"),
        ({"ceiling": 5, "window_expires": 9}, "window_start"),
        ({"ceiling": 2**70, "window_start": 0, "window_expires": 9}, "ceiling"),
        ({"ceiling": 2**31, "window_start": 0, "window_expires": 9}, "ceiling"),
        ({"ceiling": 5, "window_start": 0, "window_expires": 2**70}, "window_expires"),
    ],
)
def test_blueprint_rejects_bad_bodies(field, body, field_name):
    response = field.test_client().put("/quota/visit", json=body, headers=auth())
    assert response.status_code == 400
    assert response.get_json()["field"] == field_name


def test_blueprint_refuses_deeply_nested_json(field):
    body = '{"ceiling": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = field.test_client().put(
        "/quota/visit",
        data=body,
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.get_json()["field"] == "body"


def test_blueprint_refuses_a_record_kind_no_model_counts(field):
    now = int(time.time())
    body = {"ceiling": 5, "window_start": now, "window_expires": now + 60}
    response = field.test_client().put("/quota/consent", json=body, headers=auth())
    assert response.status_code == 404
    assert response.get_json()["field"] == "kind"
    with field.app_context():
        assert field_db.session.scalar(select(func.count(Quota.id))) == 0


def test_blueprint_needs_the_client_secret(field):
    client = field.test_client()
    assert client.get("/quota/visit").status_code == 401
    assert client.get("/quota/visit", headers=auth("wrong")).status_code == 401


def approval_for(
    client="clinic-1", kind="visit", extra=5, expires_in=3600, nonce=None, secret=SECRET
):
    request = OverrideRequest.new(client, kind, 0)
    approval = Approval(
        client, kind, extra, nonce or request.nonce, int(time.time()) + expires_in
    )
    return approval_code(approval, override_key(secret))


def requested_nonce(field) -> str:
    """The nonce of the request code the device's override page shows."""
    import re

    page = field.test_client().get("/quota/visit/override").get_data(as_text=True)
    code = re.search(r"id='request-code'>([^<]+)<", page).group(1)
    return OverrideRequest.parse(code).nonce


def apply(field, code):
    return field.test_client().post("/quota/visit/override", data={"code": code})


def test_override_code_raises_the_ceiling_once(field):
    with field.app_context():
        open_window(1)
    page = field.test_client().get("/quota/visit/override").get_data(as_text=True)
    assert "request-code" in page
    code = approval_for(extra=5, nonce=requested_nonce(field))
    assert "Approved: 5 more" in apply(field, code).get_data(as_text=True)
    assert "already used" in apply(field, code).get_data(as_text=True)
    # A code for a request this device never made (say, before it was wiped
    # and reinstalled) is refused: it may have been applied already.
    stranger = approval_for(extra=5)
    assert "not asked for on this device" in apply(field, stranger).get_data(
        as_text=True
    )
    with field.app_context():
        assert field_db.session.scalar(select(Quota.ceiling)) == 6


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (lambda n: approval_for(client="clinic-2", nonce=n), "another client"),
        (
            lambda n: approval_for(kind="consent", nonce=n),
            "another client or record kind",
        ),
        (lambda n: approval_for(expires_in=-5, nonce=n), "expired"),
        (lambda n: approval_for(secret="other-secret", nonce=n), "not genuine"),
        (lambda n: approval_for(nonce=n)[:-3] + "abc", "not genuine"),
        (lambda n: "x" + approval_for(nonce=n)[1:], "not genuine"),
        (lambda n: "garbage", "not genuine"),
    ],
)
def test_bad_override_codes_are_refused(field, code, reason):
    with field.app_context():
        open_window(1)
    assert reason in apply(field, code(requested_nonce(field))).get_data(as_text=True)
    with field.app_context():
        assert field_db.session.scalar(select(Quota.ceiling)) == 1


def test_codes_are_checked_offline_against_the_clock():
    from quota.client.codes import verify_approval

    code = approval_for(expires_in=60)
    key = override_key(SECRET)
    later = datetime.now(UTC) + timedelta(minutes=2)
    with pytest.raises(InvalidCode, match="expired"):
        verify_approval(code, key, "clinic-1", "visit", now=later)
    assert verify_approval(code, key, "clinic-1", "visit").extra == 5


def test_bulk_and_core_inserts_are_counted_all_or_nothing(field):
    """A Core insert of 105 rows under a ceiling of 100 stored them all before."""
    from sqlalchemy import insert

    with field.app_context():
        open_window(100)
        session = field_db.session
        with pytest.raises(QuotaReachedError, match="105 'visit' records would pass"):
            session.execute(insert(Visit), [{"subject": str(n)} for n in range(105)])
        session.rollback()
        assert visits() == 0
        session.execute(insert(Visit), [{"subject": str(n)} for n in range(60)])
        session.bulk_insert_mappings(Visit, [{"subject": "b"}] * 30)
        session.connection().execute(Visit.__table__.insert(), [{"subject": "c"}] * 9)
        session.commit()
        assert (visits(), session.scalar(select(Quota.count))) == (99, 99)
        with pytest.raises(QuotaReachedError):
            session.bulk_save_objects([Visit(), Visit()])
        session.rollback()
        session.add(Visit())
        session.commit()
        assert visits() == 100


def test_an_insert_from_a_select_cannot_be_counted_and_is_refused(field):
    from sqlalchemy import insert, literal

    from quota.client import QuotaCountError

    with field.app_context():
        open_window(100)
        with pytest.raises(QuotaCountError, match="cannot be counted"):
            field_db.session.execute(
                insert(Visit).from_select(["subject"], select(literal("x")))
            )
        field_db.session.rollback()
        assert visits() == 0


def test_a_raise_holds_until_its_lease_ends_then_falls_back(field, monkeypatch):
    client = field.test_client()
    now = int(time.time())
    window = {"window_start": now - 10, "window_expires": now + 3600}
    leased = {**window, "ceiling": 5, "confirmed": 2, "lease_expires": now + 2}
    assert client.put("/quota/visit", json=leased, headers=auth()).status_code == 200
    with field.app_context():
        for _ in range(3):
            field_db.session.add(Visit())
            field_db.session.commit()
    # The device's clock passes the lease end: back to the confirmed 2, and
    # the refusal says what lapsed.
    monkeypatch.setattr("quota.client.clock.now_timestamp", lambda: now + 10)
    with field.app_context():
        field_db.session.add(Visit())
        with pytest.raises(QuotaReachedError, match="lapsed"):
            field_db.session.commit()
        field_db.session.rollback()
    monkeypatch.undo()
    # A raise whose lease has already ended is refused: it arrived too late.
    stale = {**leased, "lease_expires": now - 1}
    refused = client.put("/quota/visit", json=stale, headers=auth())
    assert refused.status_code == 409
    assert refused.get_json()["field"] == "lease_expires"


def test_a_refusal_outside_the_window_speaks_of_the_device_clock(field):
    client = field.test_client()
    now = int(time.time())
    # The controller's clock is 10 days ahead of this device's.
    body = {
        "ceiling": 5,
        "window_start": now + 9 * 86400,
        "window_expires": now + 40 * 86400,
        "controller_time": now + 10 * 86400,
        "max_clock_skew": 3600,
    }
    assert client.put("/quota/visit", json=body, headers=auth()).status_code == 200
    state = client.get("/quota/visit", headers=auth()).get_json()
    assert abs(state["clock"] - now) < 60
    with field.app_context():
        field_db.session.add(Visit())
        with pytest.raises(QuotaNotSetOrExpiredError) as refused:
            field_db.session.commit()
    message = str(refused.value)
    assert "10 days behind the controller's: check the device clock" in message
    assert "opens at" in message


def test_an_approval_before_the_first_pull_opens_the_window(field):
    now = int(time.time())
    approval = Approval(
        "clinic-1",
        "visit",
        3,
        requested_nonce(field),
        now + 3600,
        issued=now,
        max_skew=3600,
        window_start=now - 60,
        window_expires=now + 86400,
    )
    code = approval_code(approval, override_key(SECRET))
    assert "Approved: 3 more" in apply(field, code).get_data(as_text=True)
    with field.app_context():
        for _ in range(4):
            field_db.session.add(Visit())
            try:
                field_db.session.commit()
            except QuotaReachedError:
                field_db.session.rollback()
        assert visits() == 3


def test_a_code_judged_on_a_slow_or_fast_clock_says_to_check_it():
    from quota.client.codes import verify_approval

    now = int(time.time())
    request = OverrideRequest.new("clinic-1", "visit", 0)
    approval = Approval(
        "clinic-1", "visit", 2, request.nonce, now + 86400, issued=now, max_skew=3600
    )
    code = approval_code(approval, override_key(SECRET))
    key = override_key(SECRET)
    slow = datetime.fromtimestamp(now - 2 * 3600, UTC)  # beyond the bound
    with pytest.raises(InvalidCode, match="check the device clock"):
        verify_approval(code, key, "clinic-1", "visit", now=slow)
    within = datetime.fromtimestamp(now - 1800, UTC)
    assert verify_approval(code, key, "clinic-1", "visit", now=within).extra == 2
    fast = datetime.fromtimestamp(now + 2 * 86400, UTC)
    with pytest.raises(InvalidCode, match=r"expired .* check the device clock"):
        verify_approval(code, key, "clinic-1", "visit", now=fast)


def test_the_override_page_of_an_unknown_kind_is_a_page(field):
    page = field.test_client().get("/quota/consent/override")
    assert page.status_code == 404
    assert page.content_type.startswith("text/html")
    text = page.get_data(as_text=True)
    assert "No quota counts consent records on this device" in text
    assert '"error"' not in text
    api = field.test_client().get("/quota/consent")
    assert api.get_json()["field"] == "kind"  # the controller's API stays JSON

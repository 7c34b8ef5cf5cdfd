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


def apply(field, code):
    return field.test_client().post("/quota/visit/override", data={"code": code})


def test_override_code_raises_the_ceiling_once(field):
    with field.app_context():
        open_window(1)
    page = field.test_client().get("/quota/visit/override").get_data(as_text=True)
    assert "request-code" in page
    code = approval_for(extra=5)
    assert "Approved: 5 more" in apply(field, code).get_data(as_text=True)
    assert "already used" in apply(field, code).get_data(as_text=True)
    with field.app_context():
        assert field_db.session.scalar(select(Quota.ceiling)) == 6


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (lambda: approval_for(client="clinic-2"), "another client"),
        (lambda: approval_for(kind="consent"), "another client or record kind"),
        (lambda: approval_for(expires_in=-5), "expired"),
        (lambda: approval_for(secret="other-secret"), "not genuine"),
        (lambda: approval_for()[:-3] + "abc", "not genuine"),
        (lambda: "x" + approval_for()[1:], "not genuine"),
        (lambda: "garbage", "not genuine"),
    ],
)
def test_bad_override_codes_are_refused(field, code, reason):
    with field.app_context():
        open_window(1)
    assert reason in apply(field, code()).get_data(as_text=True)
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

"""Pages for every allocation record: create, edit, delete, by the API's rules."""

from __future__ import annotations

import re

from sqlalchemy import select

from allocation.models import AllocationPeriod, Project
from allocation.records import COLLECTIONS
from tests.allocation.example import build_kep_site
from tests.support import csrf_token
from tracker.audit.models import AuditEvent
from tracker.extensions import db

RECORDS = "/allocation/records"


def submit(client, path: str, **fields):
    token = csrf_token(client, path)
    return client.post(path, data={"csrf_token": token, **fields})


def test_every_kind_of_record_has_a_list_and_a_form(app, client, user, login):
    with app.app_context():
        ids = build_kep_site()
    login()
    index = client.get(f"{RECORDS}/").get_data(as_text=True)
    for collection in COLLECTIONS:
        assert f'data-kind="{collection.name}"' in index
        listed = client.get(f"{RECORDS}/{collection.name}/")
        assert listed.status_code == 200
        form = client.get(f"{RECORDS}/{collection.name}/new")
        assert form.status_code == 200
        assert 'name="csrf_token"' in form.get_data(as_text=True)
    pools = client.get(f"{RECORDS}/allocations/").get_data(as_text=True)
    assert "ProjectD · 2100Q1 · CPU Hours" in pools
    edit = client.get(f"{RECORDS}/periods/{ids['period']}/edit").get_data(as_text=True)
    assert 'name="last_day"' in edit and 'value="2100-03-31"' in edit
    assert 'name="end"' not in edit
    assert client.get(f"{RECORDS}/nothing/").status_code == 404
    assert client.get(f"{RECORDS}/projects/999/edit").status_code == 404


def test_create_edit_and_delete_a_period_with_confirmation(app, client, user, login):
    login()
    created = submit(
        client,
        f"{RECORDS}/periods/new",
        name="2101Q1",
        start="2101-01-01",
        last_day="2101-03-31",
    )
    assert created.status_code == 302
    with app.app_context():
        period = db.session.scalar(select(AllocationPeriod))
        assert (period.start.isoformat(), period.end.isoformat()) == (
            "2101-01-01",
            "2101-04-01",
        )
        period_id = period.id
    # The API's rules: the last day must not come before the start.
    wrong = submit(
        client,
        f"{RECORDS}/periods/{period_id}/edit",
        name="2101Q1",
        start="2101-01-01",
        last_day="2100-12-01",
    )
    assert wrong.status_code == 400
    page = wrong.get_data(as_text=True)
    assert re.search(r'data-field="last_day">must be on or after start', page)
    assert 'value="2100-12-01"' in page  # what was typed is kept
    renamed = submit(
        client,
        f"{RECORDS}/periods/{period_id}/edit",
        name="2101 first quarter",
        start="2101-01-01",
        last_day="2101-03-31",
    )
    assert renamed.status_code == 302
    ask = client.get(f"{RECORDS}/periods/{period_id}/delete").get_data(as_text=True)
    assert "Delete the allocation period 2101 first quarter?" in ask
    assert "AllocationPeriod" not in ask
    with app.app_context():
        assert db.session.get(AllocationPeriod, period_id) is not None
    deleted = submit(client, f"{RECORDS}/periods/{period_id}/delete")
    assert deleted.status_code == 302
    with app.app_context():
        assert db.session.get(AllocationPeriod, period_id) is None
        actions = db.session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.target_type == "AllocationPeriod")
            .order_by(AuditEvent.id)
        ).all()
    assert actions == ["create", "update", "delete"]


def test_bad_input_names_the_field_and_stores_nothing(app, client, user, login):
    with app.app_context():
        ids = build_kep_site()
    login()
    duplicate = submit(client, f"{RECORDS}/projects/new", name="projectd")
    assert duplicate.status_code == 409
    assert 'data-field="name"' in duplicate.get_data(as_text=True)
    bad_parent = submit(client, f"{RECORDS}/projects/new", name="Optics", parent_id="x")
    assert bad_parent.status_code == 400
    quantity = submit(
        client,
        f"{RECORDS}/allocations/new",
        grant_id="1",
        allocation_pool_id=str(ids["q1pd"]),
        quantity="5 GB",
    )
    assert quantity.status_code == 400
    assert 'data-field="quantity"' in quantity.get_data(as_text=True)
    in_use = submit(client, f"{RECORDS}/projects/{ids['ProjectD']}/delete")
    assert in_use.status_code == 302
    assert "still used" in client.get(in_use.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        names = db.session.scalars(select(Project.name)).all()
    assert "Optics" not in names and "projectd" not in names and "ProjectD" in names


def test_long_lists_come_a_page_at_a_time(app, client, user, login, monkeypatch):
    from allocation import record_views

    monkeypatch.setattr(record_views, "PAGE_SIZE", 2)
    with app.app_context():
        build_kep_site()  # 7 projects
    login()
    first = client.get(f"{RECORDS}/projects/").get_data(as_text=True)
    assert first.count("<tr data-id=") == 2 and "Page 1 of 4" in first
    last = client.get(f"{RECORDS}/projects/?page=4").get_data(as_text=True)
    assert last.count("<tr data-id=") == 1 and "Previous" in last


def test_pages_name_kinds_of_record_in_the_pages_language(app, client, user, login):
    from flask_babel import force_locale

    from allocation.record_views import kind_names

    with app.app_context():
        ids = build_kep_site()
    login()
    ask = client.get(f"{RECORDS}/allocation-pools/{ids['q1pa']}/delete")
    page = ask.get_data(as_text=True)
    assert "Delete the allocation pool ProjectA · 2100Q1 · Disk Space?" in page
    new = client.get(f"{RECORDS}/resource-pools/new").get_data(as_text=True)
    assert "New resource pool" in new
    index = client.get(f"{RECORDS}/").get_data(as_text=True)
    for text in (page, new, index):
        assert not re.search(r"AllocationPool|ResourcePool|AccountMap", text)
    pools = next(c for c in COLLECTIONS if c.name == "allocation-pools")
    with app.test_request_context(), force_locale("fr"):
        assert kind_names(pools) == (
            "réserve d\u2019allocation",
            "Réserves d\u2019allocation",
        )


def test_shortening_a_period_that_has_usage_is_refused_with_the_numbers(
    app, client, user, login
):
    from tests.allocation.test_views import kep_with_usage

    ids = kep_with_usage(app)
    login()
    edit = f"{RECORDS}/periods/{ids['period']}/edit"
    shorter = submit(
        client, edit, name="2100Q1", start="2100-01-05", last_day="2100-03-31"
    )
    assert shorter.status_code == 400
    page = " ".join(shorter.get_data(as_text=True).split())
    assert 'data-field="start">the new dates leave out usage this period counts' in page
    assert "300 CPU-hours of CPU Hours" in page  # days 2 to 4 (day 1 has 0)
    assert "a peak of 100 KB of Disk Space" in page
    assert "on 4 days from 2100-01-01 to 2100-01-04" in page
    assert "Usage is never deleted" in page
    with app.app_context():
        period = db.session.get(AllocationPeriod, ids["period"])
        assert period.start.isoformat() == "2100-01-01"
    # Moving the end past the usage changes nothing that is counted.
    later = submit(
        client, edit, name="2100Q1", start="2100-01-01", last_day="2100-02-28"
    )
    assert later.status_code == 302

"""The sync page: producers and their problems, carried files, registration."""

from __future__ import annotations

import html
import io
import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from sync.models import ImportedFile, SyncProducer, SyncRecord
from sync.wire.bundles import make_bundle, write_bundle_file
from sync.wire.signing import public_key_of
from tests.support import Login, csrf_token, screenshot, signed_in_tab
from tests.sync.support import FIELD_MODELS, producer_state, register, wire
from tracker.batch.models import BatchOperation
from tracker.extensions import db

DASH = "\N{EN DASH}"
PARENT = {"household_id": {"model": "Household", "natural_key": ["H1"]}}


def households(producer: str, first: int, count: int) -> list[dict]:
    return [
        wire(producer, sequence, "Household", [f"{producer}/{sequence}"], "insert", {})
        for sequence in range(first, first + count)
    ]


def orphans(producer: str) -> list[dict]:
    """A member whose household never arrives, then a household, then an update."""
    return [
        wire(producer, 1, "Member", ["M9"], "insert", {"name": "Ada"}, PARENT),
        wire(producer, 2, "Household", ["H5"], "insert", {"village": "Kanye"}),
        wire(producer, 3, "Member", ["M9"], "update", {"name": "Ada L."}, PARENT),
    ]


def push(client, transactions: list[dict], credential: str) -> None:
    bundle = make_bundle(transactions, credential).as_json()
    response = client.post("/api/sync/push", json=bundle)
    assert response.status_code == 200, response.json


def bundle_bytes(transactions: list[dict], credential: str) -> bytes:
    stream = io.BytesIO()
    write_bundle_file(make_bundle(transactions, credential), stream)
    return stream.getvalue()


def upload(client, content: bytes, name: str = "tablet-1-0001.jsonl.gz"):
    """Post a file through the page's form; return the page it leads to."""
    form = {
        "csrf_token": csrf_token(client, "/sync"),
        "file": (io.BytesIO(content), name),
    }
    response = client.post(
        "/sync/files",
        data=form,
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    assert response.status_code == 200
    return response.get_data(as_text=True)


def flashes(page: str) -> list[str]:
    return [
        html.unescape(text)
        for text in re.findall(r'<p class="flash[^"]*" role="status">(.*?)</p>', page)
    ]


def producer_row(page: str, producer_id: str) -> dict[str, str]:
    """The producers table's row for one producer, as column -> text."""
    row = re.search(rf'<tr data-producer="{producer_id}".*?</tr>', page, re.S)
    assert row, f"no row for {producer_id}"
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)
    text = [
        html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", cell))).strip()
        for cell in cells
    ]
    names = "producer description received applied applied_count lag pending parked"
    names += " quarantined held"
    names += " rejected conflicts missing contact action"
    return dict(zip(names.split(), text, strict=True))


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_pages_need_sign_in(app, client):
    register(app, "tablet-1")
    for path in ("/sync", "/sync/producers/tablet-1"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert "/login" in response.headers["Location"]
    token = csrf_token(client, "/login")
    response = client.post(
        "/sync/producers", data={"csrf_token": token, "producer_id": "intruder"}
    )
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]
    assert count(app, SyncProducer) == 1


def test_producers_show_cursors_gaps_and_problems(app, signed_in):
    register(app, "tablet-1")
    orphaned, _ = register(app, "tablet-2")
    gapped, _ = register(app, "tablet-3")
    push(signed_in, orphans("tablet-2"), orphaned)
    push(signed_in, households("tablet-3", 1, 500), gapped)
    push(signed_in, households("tablet-3", 1001, 2), gapped)

    page = signed_in.get("/sync").get_data(as_text=True)
    assert producer_row(page, "tablet-1") | {"action": ""} == {
        "producer": "tablet-1",
        "description": "",
        "received": "0",
        "applied": "0",
        "applied_count": "0",
        "lag": "0",
        "pending": "0",
        "parked": "0",
        "quarantined": "0",
        "held": "0",
        "rejected": "0",
        "conflicts": "0",
        "missing": DASH,
        "contact": "never",
        "action": "",
    }
    orphan = producer_row(page, "tablet-2")
    assert (orphan["received"], orphan["applied"], orphan["parked"]) == ("3", "3", "2")
    # Settled through 3, of which one applied: the counts add up to the cursor.
    assert orphan["applied_count"] == "1"
    gap = producer_row(page, "tablet-3")
    assert gap["received"] == "500 (highest 1002)"
    assert (gap["applied"], gap["lag"]) == ("500", "502")
    assert gap["missing"] == f"waiting for 501{DASH}1000"
    assert gap["pending"] == "2"  # 1001 and 1002 wait for the gap to fill
    assert gap["contact"] != "never"
    assert 'href="/sync/producers/tablet-2"' in page

    detail = signed_in.get("/sync/producers/tablet-2").get_data(as_text=True)
    parked = re.search(r'<table class="list" id="parked">.*?</table>', detail, re.S)
    reasons = html.unescape(parked.group(0))
    assert "waits for its parent Household" in reasons
    assert "waits for parked transaction 1" in reasons
    assert '<td class="num">1</td><td>Member</td>' in parked.group(0)


def test_recent_sync_jobs_are_listed_newest_first(app, signed_in):
    credential, _ = register(app, "tablet-1")
    push(signed_in, households("tablet-1", 1, 2), credential)
    push(signed_in, households("tablet-1", 3, 1), credential)
    page = signed_in.get("/sync").get_data(as_text=True)
    table = re.search(r'id="sync-operations">.*?</table>', page, re.S).group(0)
    ids = [int(i) for i in re.findall(r'<tr data-operation="(\d+)"', table)]
    assert len(ids) == 2 and ids == sorted(ids, reverse=True)
    assert "tablet-1 3<" in table and f"tablet-1 1{DASH}2<" in table
    assert "2 new, 0 already received, 2 applied, 0 parked" in table


def test_last_contact_is_shown_in_the_configured_time_zone(make_app, user):
    app = make_app(SYNC_MODELS=FIELD_MODELS, BABEL_DEFAULT_TIMEZONE="Asia/Tokyo")
    register(app, "tablet-1")
    with app.app_context():
        producer = db.session.scalar(select(SyncProducer))
        producer.last_contact = datetime(2026, 1, 2, 20, 30, tzinfo=UTC)
        db.session.commit()
    client = app.test_client()
    Login(client)()
    page = client.get("/sync").get_data(as_text=True)
    assert producer_row(page, "tablet-1")["contact"] == "3 Jan 2026, 05:30:00"


def test_a_good_file_is_imported_and_listed(app, signed_in):
    credential, _ = register(app, "tablet-1")
    content = bundle_bytes(households("tablet-1", 1, 2), credential)
    page = upload(signed_in, content)
    assert flashes(page) == [
        "Imported tablet-1-0001.jsonl.gz from tablet-1,"
        f" transactions 1{DASH}2: 2 new, 0 already received, 2 applied, 0 parked,"
        " 0 quarantined, 0 rejected."
    ]
    assert '<p class="flash flash-success" role="status">Imported' in page
    assert count(app, SyncRecord) == 2
    files = re.search(r'id="imported-files">.*?</table>', page, re.S).group(0)
    assert "tablet-1-0001.jsonl.gz" in files and f"1{DASH}2" in files
    assert "2 new, 0 already received, 0 quarantined, 0 held, 0 rejected" in files
    assert producer_row(page, "tablet-1")["applied"] == "2"
    with app.app_context():
        operation = db.session.scalar(select(BatchOperation))
        assert operation.operation_type == "sync-import"
        assert operation.started_by_id is not None


def test_a_file_with_a_gap_says_what_it_waits_for(app, signed_in):
    credential, _ = register(app, "tablet-1")
    page = upload(signed_in, bundle_bytes(households("tablet-1", 3, 2), credential))
    assert flashes(page)[0].endswith(f"0 rejected. Waiting for 1{DASH}2.")


def test_a_truncated_file_is_refused_with_its_reason(app, signed_in):
    credential, _ = register(app, "tablet-1")
    content = bundle_bytes(households("tablet-1", 1, 50), credential)
    page = upload(signed_in, content[: len(content) // 2], "cut.jsonl.gz")
    assert flashes(page) == [
        "cut.jsonl.gz was refused: file: ends before its end: it is truncated"
        " (copy it again)"
    ]
    assert count(app, SyncRecord) == 0 and count(app, ImportedFile) == 0
    # The failed import shows only as a failed job, with its error.
    jobs = re.search(r'id="sync-operations">.*?</table>', page, re.S).group(0)
    assert "file import" in jobs and "result-failed" in jobs
    assert "cut.jsonl.gz: file: ends before its end" in jobs


def test_the_same_file_twice_is_imported_once(app, signed_in):
    credential, _ = register(app, "tablet-1")
    content = bundle_bytes(households("tablet-1", 1, 2), credential)
    upload(signed_in, content)
    page = upload(signed_in, content, "copy.jsonl.gz")
    [message] = flashes(page)
    assert message.startswith("tablet-1-0001.jsonl.gz was already imported on ")
    assert message.endswith(
        "(2 new, 0 already received, 0 quarantined, 0 held, 0 rejected): nothing to do."
    )
    assert count(app, ImportedFile) == 1 and count(app, SyncRecord) == 2


def test_files_from_unknown_producers_or_not_bundles_are_refused(app, signed_in):
    credential, _ = register(app, "tablet-1")
    stranger = bundle_bytes(households("tablet-1", 1, 1), credential)
    with app.app_context():
        db.session.scalar(select(SyncProducer)).producer_id = "renamed"
        db.session.commit()
    assert flashes(upload(signed_in, stranger, "s.gz")) == [
        "s.gz was refused: producer 'tablet-1' is not registered or is disabled"
    ]
    [message] = flashes(upload(signed_in, b"not a bundle", "notes.txt"))
    assert message.startswith("notes.txt was refused: file: is not a gzip")


def test_a_missing_or_oversized_file_is_explained(app, signed_in):
    token = csrf_token(signed_in, "/sync")
    page = signed_in.post(
        "/sync/files", data={"csrf_token": token}, follow_redirects=True
    ).get_data(as_text=True)
    assert flashes(page) == ["Choose a file to import."]

    credential, _ = register(app, "tablet-1")
    content = bundle_bytes(households("tablet-1", 1, 300), credential)
    app.config["SYNC_MAX_BODY_BYTES"] = len(content) // 2
    [message] = flashes(upload(signed_in, content))
    assert message.startswith("The file is larger than ")
    assert " kB, the most this page takes" in message
    assert "manage.py sync import" in message

    app.config["SYNC_MAX_BODY_BYTES"] = len(content) * 2
    app.config["SYNC_MAX_FILE_BYTES"] = 1024
    [message] = flashes(upload(signed_in, content))
    assert message.endswith("file: holds more than 1024 bytes uncompressed")
    assert count(app, SyncRecord) == 0 and count(app, ImportedFile) == 0


def test_registering_shows_the_credential_once(app, signed_in):
    form = {
        "csrf_token": csrf_token(signed_in, "/sync"),
        "producer_id": "tablet-7",
        "description": "Kanye clinic",
        "encrypt": "yes",
    }
    response = signed_in.post("/sync/producers", data=form)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    credential = re.search(r'<code id="credential">([^<]+)</code>', page).group(1)
    key = re.search(r'<code id="encryption-key">([^<]+)</code>', page).group(1)
    with app.app_context():
        producer = db.session.scalar(select(SyncProducer))
        assert producer.producer_id == "tablet-7"
        assert producer.description == "Kanye clinic"
        assert public_key_of(credential) == producer.public_key
        assert key == producer.encryption_key
    assert producer_row(page, "tablet-7")["description"] == "Kanye clinic"

    again = signed_in.get("/sync").get_data(as_text=True)
    assert credential not in again and key not in again


def test_a_refused_registration_keeps_what_was_typed(app, signed_in):
    register(app, "tablet-1")
    form = {
        "csrf_token": csrf_token(signed_in, "/sync"),
        "producer_id": "tablet-1",
        "description": "second",
    }
    page = signed_in.post("/sync/producers", data=form).get_data(as_text=True)
    assert flashes(page) == [
        "The producer was not registered: producer_id: 'tablet-1' is already"
        " registered (give a reinstalled device a new credential with manage.py"
        " sync reprovision)"
    ]
    assert 'value="second"' in page and 'id="credential"' not in page
    form["producer_id"] = "no spaces"
    page = signed_in.post("/sync/producers", data=form).get_data(as_text=True)
    assert flashes(page)[0].startswith("The producer was not registered: producer_id")
    assert count(app, SyncProducer) == 1


def test_disabling_refuses_pushes_until_enabled(app, signed_in):
    credential, _ = register(app, "tablet-1")
    path = "/sync/producers/tablet-1/active"
    assert signed_in.post(path, data={"active": "no"}).status_code == 400  # no CSRF

    token = csrf_token(signed_in, "/sync/producers/tablet-1")
    response = signed_in.post(path, data={"csrf_token": token, "active": "no"})
    assert response.headers["Location"] == "/sync/producers/tablet-1"
    bundle = make_bundle(households("tablet-1", 1, 1), credential).as_json()
    assert signed_in.post("/api/sync/push", json=bundle).status_code == 403
    page = signed_in.get("/sync").get_data(as_text=True)
    assert '<tr data-producer="tablet-1" class="disabled">' in page

    form = {"csrf_token": token, "active": "yes", "back": "index"}
    response = signed_in.post(path, data=form)
    assert response.headers["Location"] == "/sync"
    assert signed_in.post("/api/sync/push", json=bundle).status_code == 200


def test_an_unknown_producer_is_a_404_page(signed_in):
    response = signed_in.get("/sync/producers/nope")
    assert response.status_code == 404
    assert "No producer with this id." in response.get_data(as_text=True)


def test_the_page_is_translated(make_app, user):
    app = make_app(SYNC_MODELS=FIELD_MODELS, BABEL_DEFAULT_LOCALE="fr")
    register(app, "tablet-1")
    client = app.test_client()
    Login(client)()
    page = client.get("/sync").get_data(as_text=True)
    assert "Importer un fichier" in page and "Import a file" not in page
    detail = client.get("/sync/producers/tablet-1").get_data(as_text=True)
    assert "Mises en attente" in detail


@pytest.mark.slow
def test_the_page_in_a_browser(app, user, live_server, browser, tmp_path):
    register(app, "tablet-1")
    orphaned, _ = register(app, "tablet-2")
    gapped, _ = register(app, "tablet-3")
    client = app.test_client()
    push(client, orphans("tablet-2"), orphaned)
    push(client, households("tablet-3", 1, 500), gapped)
    push(client, households("tablet-3", 1001, 2), gapped)
    carried = tmp_path / "tablet-3-0501.jsonl.gz"
    carried.write_bytes(bundle_bytes(households("tablet-3", 501, 500), gapped))

    with signed_in_tab(browser, live_server) as tab:
        tab.click("nav >> text=Sync")
        tab.wait_for_url(live_server + "/sync")

        rows = tab.locator("#producers tbody tr")
        assert rows.count() == 3
        gap = tab.locator('tr[data-producer="tablet-3"]')
        assert gap.locator("td[data-column=missing]").inner_text() == (
            f"waiting for 501{DASH}1000"
        )
        screenshot(tab, "sync")

        tab.set_input_files("#upload-form input[type=file]", str(carried))
        tab.click("#upload-form button[type=submit]")
        tab.wait_for_url(live_server + "/sync")
        flashed = tab.locator(".flash").inner_text()
        assert flashed.startswith("Imported tablet-3-0501.jsonl.gz from tablet-3,")
        assert f"transactions 501{DASH}1000: 500 new" in flashed
        assert gap.locator("td[data-column=applied]").inner_text() == "1002"
        assert gap.locator("td[data-column=missing]").inner_text() == DASH
        assert tab.locator("#imported-files tbody tr").count() == 1
        screenshot(tab, "sync-imported")

        tab.fill("#register-form input[name=producer_id]", "tablet-4")
        tab.fill("#register-form input[name=description]", "Kanye clinic")
        tab.check("#register-form input[name=encrypt]")
        tab.click("#register-form button[type=submit]")
        assert len(tab.locator("#credential").inner_text()) > 40
        assert len(tab.locator("#encryption-key").inner_text()) > 40
        assert "tablet-4" not in tab.url
        screenshot(tab, "sync-registered")

        tab.click('a[href="/sync/producers/tablet-2"]')
        assert tab.locator("#parked tbody tr").count() == 2
        screenshot(tab, "sync-producer")
    assert tab.errors == []
    hosts = {urlsplit(url).hostname for url in tab.requested}
    assert hosts == {"127.0.0.1"}, hosts


def test_a_wrong_active_value_is_refused_not_taken_for_disable(
    app, signed_in, auth_headers
):
    register(app, "tablet-1")
    token = csrf_token(signed_in, "/sync/producers/tablet-1")
    path = "/sync/producers/tablet-1/active"
    response = signed_in.post(path, data={"csrf_token": token, "active": "maybe"})
    assert response.status_code == 302
    page = signed_in.get(response.headers["Location"]).get_data(as_text=True)
    assert "active" in flashes(page)[0] and "yes or no" in flashes(page)[0]
    client = app.test_client()
    for query in ("?active=maybe", ""):
        answer = client.post(
            f"/api/sync/producers/tablet-1/active{query}", headers=auth_headers
        )
        assert answer.status_code == 400 and answer.json["field"] == "active"
    for body in ({"active": "maybe"}, {"active": 1}, {"on": True}):
        answer = client.post(
            "/api/sync/producers/tablet-1/active", json=body, headers=auth_headers
        )
        assert answer.status_code == 400, body
    answer = client.post(
        "/api/sync/producers/tablet-1/active",
        json={"active": False},
        headers=auth_headers,
    )
    assert answer.status_code == 200 and answer.json["active"] is False
    assert producer_state(app, "tablet-1")["active"] is False


def test_the_cli_enables_and_disables_and_status_shows_it(app):
    register(app, "tablet-1")
    runner = app.test_cli_runner()
    off = runner.invoke(args=["sync", "disable", "tablet-1"])
    assert off.exit_code == 0 and "disabled" in off.output
    status = runner.invoke(args=["sync", "status"]).output.splitlines()
    assert "active" in status[0]
    assert status[1].split()[:2] == ["tablet-1", "no"]
    on = runner.invoke(args=["sync", "enable", "tablet-1"])
    assert on.exit_code == 0 and "enabled" in on.output
    status = runner.invoke(args=["sync", "status"]).output.splitlines()
    assert status[1].split()[:2] == ["tablet-1", "yes"]
    nobody = runner.invoke(args=["sync", "enable", "nobody"])
    assert nobody.exit_code == 1 and "no producer 'nobody'" in nobody.output

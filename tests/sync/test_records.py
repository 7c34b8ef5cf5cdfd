"""Synced data read on the server: a JSON API, a page per model with search,
and streamed CSV and JSON-lines exports."""

from __future__ import annotations

import csv
import io
import json

import pytest

from sync.wire.bundles import make_bundle
from tests.sync.support import register, wire

PUSH = "/api/sync/push"


@pytest.fixture
def pushed(server):
    credential = register(server, "tablet-1")[0]
    parent = {"household_id": {"model": "Household", "natural_key": ["H1"]}}
    transactions = [
        wire("tablet-1", 1, "Household", ["H1"], "insert", {"village": "Maun"}),
        wire("tablet-1", 2, "Household", ["H2"], "insert", {"village": "Kanye"}),
        wire("tablet-1", 3, "Member", ["M1"], "insert", {"name": "Ada"}, parent),
        wire("tablet-1", 4, "Household", ["H1"], "update", {"size": 4}),
    ]
    bundle = make_bundle(transactions, credential).as_json()
    assert server.test_client().post(PUSH, json=bundle).status_code == 200
    return server


def test_the_api_lists_records_by_model_and_search(pushed, auth_headers):
    client = pushed.test_client()
    assert client.get("/api/sync/records").status_code == 401
    answer = client.get("/api/sync/records?model=Household", headers=auth_headers)
    assert answer.status_code == 200
    body = answer.json
    assert (body["total"], body["page"], body["pages"]) == (2, 1, 1)
    first = next(item for item in body["items"] if item["natural_key"] == ["H1"])
    assert first["fields"] == {"village": "Maun", "size": 4}
    assert (first["version"], first["producer"], first["sequence"]) == (
        2,
        "tablet-1",
        4,
    )
    assert first["updated"] and first["parents"] == {}
    found = client.get("/api/sync/records?q=kAnYe", headers=auth_headers).json
    assert [item["natural_key"] for item in found["items"]] == [["H2"]]
    member = client.get("/api/sync/records?model=Member", headers=auth_headers).json
    assert member["items"][0]["parents"]["household_id"]["natural_key"] == ["H1"]
    since = first["updated"]
    later = client.get(
        "/api/sync/records", query_string={"since": since}, headers=auth_headers
    ).json
    assert all(item["updated"] > since for item in later["items"])
    paged = client.get("/api/sync/records?per_page=1&page=2", headers=auth_headers)
    assert (paged.json["pages"], len(paged.json["items"])) == (3, 1)


@pytest.mark.parametrize(
    ("query", "field"),
    [("since=yesterday", "since"), ("since=2026-12-01T10:00:00", "since")],
)
def test_bad_arguments_name_the_field(pushed, auth_headers, query, field):
    answer = pushed.test_client().get(
        f"/api/sync/records?{query}", headers=auth_headers
    )
    assert answer.status_code == 400 and answer.json["field"] == field


def test_a_search_with_wildcards_matches_them_literally(pushed, auth_headers):
    answer = pushed.test_client().get("/api/sync/records?q=%25", headers=auth_headers)
    assert answer.json["total"] == 0


def test_exports_stream_every_record_of_a_model(pushed, signed_in):
    csv_answer = signed_in.get("/sync/records/Household.csv")
    assert csv_answer.status_code == 200
    assert csv_answer.headers["Content-Disposition"] == (
        'attachment; filename="Household.csv"'
    )
    rows = list(csv.reader(io.StringIO(csv_answer.get_data(as_text=True))))
    assert rows[0] == [
        "natural_key",
        "size",
        "village",
        "_version",
        "_producer",
        "_updated",
    ]
    assert sorted(row[:5] for row in rows[1:]) == [
        ['["H1"]', "4", "Maun", "2", "tablet-1"],
        ['["H2"]', "", "Kanye", "1", "tablet-1"],
    ]
    lines = signed_in.get("/sync/records/Member.jsonl").get_data(as_text=True)
    items = [json.loads(line) for line in lines.splitlines()]
    assert [item["fields"] for item in items] == [{"name": "Ada"}]


def test_the_page_browses_and_searches(pushed, signed_in):
    page = signed_in.get("/sync/records?model=Household&q=maun").get_data(as_text=True)
    assert "Household (2)" in page and "Member (1)" in page
    assert "&#34;H1&#34;" in page or '["H1"]' in page
    assert "Kanye" not in page
    assert 'href="/sync/records/Household.csv"' in page
    assert signed_in.get("/sync/records/Bad%22.csv").status_code == 404


def test_pages_and_exports_need_a_sign_in(pushed):
    client = pushed.test_client()
    assert client.get("/sync/records").status_code == 302
    assert client.get("/sync/records/Household.csv").status_code == 302


def test_csv_cells_a_spreadsheet_would_run_are_quoted(server, signed_in):
    credential = register(server, "tablet-9")[0]
    fields = {
        "a_formula": '=HYPERLINK("http://x")',
        "b_at": "@SUM(A1)",
        "c_plus": "+1+2",
        "d_minus": "-2-3",
        "e_tab": "\tx",
        "f_return": "\rx",
        "g_number": -5,
        "h_text_number": "-1.5",
        "i_plain": "Maun",
    }
    transaction = wire("tablet-9", 1, "Household", ["=H9"], "insert", fields)
    bundle = make_bundle([transaction], credential).as_json()
    assert server.test_client().post(PUSH, json=bundle).status_code == 200
    text = signed_in.get("/sync/records/Household.csv").get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0][1:10] == sorted(fields)
    assert rows[1][1:10] == [
        '\'=HYPERLINK("http://x")',
        "'@SUM(A1)",
        "'+1+2",
        "'-2-3",
        "'\tx",
        "'\rx",
        "-5",
        "-1.5",
        "Maun",
    ]


@pytest.mark.parametrize("text", ["village", '"', ":", "{", "size", "household_id"])
def test_a_search_matches_values_not_names_or_punctuation(pushed, auth_headers, text):
    client = pushed.test_client()
    found = client.get(
        "/api/sync/records", query_string={"q": text}, headers=auth_headers
    ).json
    assert found["total"] == 0, found["items"]


def test_a_search_matches_field_values_and_natural_keys(
    pushed, auth_headers, signed_in
):
    client = pushed.test_client()
    for text, keys in (
        ("mau", [["H1"]]),
        ("4", [["H1"]]),
        ("m1", [["M1"]]),
        ('["H2"]', [["H2"]]),
    ):
        found = client.get(
            "/api/sync/records", query_string={"q": text}, headers=auth_headers
        ).json
        assert [item["natural_key"] for item in found["items"]] == keys, text
    page = signed_in.get("/sync/records?model=Household&q=village")
    assert "Maun" not in page.get_data(as_text=True)


def test_a_parent_is_given_by_its_natural_key_never_a_device_local_id(
    server, auth_headers, signed_in
):
    credential = register(server, "tablet-1")[0]
    parent = {"household_id": {"model": "Household", "natural_key": ["H1"]}}
    transactions = [
        wire("tablet-1", 1, "Household", ["H1"], "insert", {"village": "Maun"}),
        wire(
            "tablet-1",
            2,
            "Member",
            ["M1"],
            "insert",
            {"name": "Ada", "household_id": 7},
            parent,
        ),
    ]
    bundle = make_bundle(transactions, credential).as_json()
    assert server.test_client().post(PUSH, json=bundle).status_code == 200
    client = server.test_client()
    [item] = client.get("/api/sync/records?model=Member", headers=auth_headers).json[
        "items"
    ]
    assert item["fields"] == {"name": "Ada"}
    assert item["parents"] == parent
    [line] = signed_in.get("/sync/records/Member.jsonl").get_data(as_text=True).split()
    assert json.loads(line)["fields"] == {"name": "Ada"}
    rows = list(
        csv.reader(
            io.StringIO(
                signed_in.get("/sync/records/Member.csv").get_data(as_text=True)
            )
        )
    )
    assert rows[0][:3] == ["natural_key", "household_id", "name"]
    assert rows[1][:3] == ['["M1"]', '["H1"]', "Ada"]
    page = signed_in.get("/sync/records?model=Member").get_data(as_text=True)
    table = page.split('id="records"')[1].split("</table>")[0]
    assert ": 7" not in table and "household_id → Household" in table


def poll(client, headers, **arguments):
    """Every item after a cursor, a page at a time, as a poller reads them."""
    items, cursor = [], arguments.pop("after", None)
    for _ in range(20):
        query = {**arguments, **({"after": cursor} if cursor else {})}
        page = client.get("/api/sync/records", query_string=query, headers=headers)
        assert page.status_code == 200, page.json
        if not page.json["items"]:
            return items, cursor
        items += page.json["items"]
        cursor = page.json["next"]
    raise AssertionError("the cursor never reached the end")


def test_a_cursor_pages_through_records_of_one_run_and_then_deletes(
    server, auth_headers
):
    credential = register(server, "tablet-1")[0]
    codes = [f"H{n}" for n in range(7)]
    inserts = [
        wire("tablet-1", n, "Household", [code], "insert", {"village": code})
        for n, code in enumerate(codes, 1)
    ]
    client = server.test_client()
    bundle = make_bundle(inserts, credential).as_json()
    assert client.post(PUSH, json=bundle).status_code == 200
    # One apply run: the seven share one update time.
    items, cursor = poll(client, auth_headers, model="Household", per_page=2)
    assert sorted(item["natural_key"][0] for item in items) == codes
    assert len({item["updated"] for item in items}) == 1
    assert not any(item["deleted"] for item in items)
    delete = wire("tablet-1", 8, "Household", ["H3"], "delete", {})
    bundle = make_bundle([delete], credential).as_json()
    assert client.post(PUSH, json=bundle).status_code == 200
    # A poller learns of the delete; the list without deletes does not show it.
    later, _ = poll(client, auth_headers, model="Household", after=cursor)
    assert [(item["natural_key"], item["deleted"]) for item in later] == [
        (["H3"], True)
    ]
    assert later[0]["deleted_at"] >= items[0]["updated"]
    since = client.get(
        "/api/sync/records",
        query_string={"since": items[0]["updated"]},
        headers=auth_headers,
    ).json["items"]
    assert [item["natural_key"] for item in since] == [["H3"]]
    listed = client.get("/api/sync/records?model=Household", headers=auth_headers)
    assert listed.json["total"] == 6
    every = client.get(
        "/api/sync/records?model=Household&include_deleted=1", headers=auth_headers
    )
    assert every.json["total"] == 7
    for query, field in (
        ("after=nonsense", "after"),
        ("include_deleted=2", "include_deleted"),
    ):
        answer = client.get(f"/api/sync/records?{query}", headers=auth_headers)
        assert answer.status_code == 400 and answer.json["field"] == field


def test_an_export_of_an_unknown_model_is_a_404(pushed, signed_in):
    for path in ("/sync/records/Nope.csv", "/sync/records/Nope.jsonl"):
        assert signed_in.get(path).status_code == 404
    assert signed_in.get("/sync/records/Household.csv").status_code == 200


def test_a_device_local_primary_key_is_not_data_and_a_parent_s_key_is_searched(
    server, server_url, make_field, auth_headers, signed_in
):
    from tests.sync.field_app import Household, Member, field_db

    field = make_field(server, "tablet-1")
    with field.app_context():
        household = Household(code="HX", village="Maun")
        other = Household(code="HY", village="Kanye")
        field_db.session.add_all([household, other])
        field_db.session.flush()
        field_db.session.add(
            Member(identifier="MA", household_id=household.id, name="Ada")
        )
        field_db.session.commit()
        field_db.session.remove()
    result = field.test_cli_runner().invoke(args=["sync", "push", server_url])
    assert result.exit_code == 0, result.output
    client = server.test_client()
    items = client.get("/api/sync/records", headers=auth_headers).json["items"]
    assert {tuple(item["natural_key"]): item["fields"] for item in items} == {
        ("HX",): {"code": "HX", "village": "Maun", "income": None, "enumerated": None},
        ("HY",): {"code": "HY", "village": "Kanye", "income": None, "enumerated": None},
        ("MA",): {"identifier": "MA", "name": "Ada", "seen": None},
    }
    for text in ("1", "2", "3"):
        found = client.get(
            "/api/sync/records", query_string={"q": text}, headers=auth_headers
        ).json
        assert found["total"] == 0, (text, found["items"])
    found = client.get(
        "/api/sync/records",
        query_string={"q": "HX", "model": "Member"},
        headers=auth_headers,
    ).json
    assert [item["natural_key"] for item in found["items"]] == [["MA"]]
    rows = list(
        csv.reader(
            io.StringIO(
                signed_in.get("/sync/records/Household.csv").get_data(as_text=True)
            )
        )
    )
    assert "id" not in rows[0]
    page = signed_in.get("/sync/records?model=Household").get_data(as_text=True)
    table = page.split('id="records"')[1].split("</table>")[0]
    assert ">id<" not in table and "id:" not in table

"""Bulk actions on the instance list and its CSV export."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from tests.support import Database, Login, csrf_token
from tracker.instances.models import Instance


def add(db, count: int, first_organisation: str = "O", **fields) -> list[int]:
    with db.session() as session:
        instances = [
            Instance(
                url=f"https://site{index}.example.org",
                contact="C",
                email="c@example.org",
                organisation=first_organisation if index == 0 else "O",
                **fields,
            )
            for index in range(count)
        ]
        session.add_all(instances)
        session.commit()
        return [instance.id for instance in instances]


def states(db) -> dict[str, tuple[bool, bool]]:
    with db.session() as session:
        return {
            i.url[8:13]: (i.enabled, i.approved)
            for i in session.scalars(select(Instance).order_by(Instance.id))
        }


def bulk(client, action: str, numbers: list, **extra):
    data = {"csrf_token": csrf_token(client, "/"), "action": action, "number": numbers}
    return client.post("/instances/bulk", data={**data, **extra})


def test_ticked_instances_are_enabled_disabled_approved_deleted(signed_in, db):
    numbers = add(db, 3, approved=False)
    response = bulk(signed_in, "disable", numbers[:2], organisation="O")
    assert response.status_code == 302
    assert response.headers["Location"] == ("/?organisation=O&sort=registered&dir=desc")
    assert states(db) == {
        "site0": (False, False),
        "site1": (False, False),
        "site2": (True, False),
    }
    page = signed_in.get("/").get_data(as_text=True)
    assert "Disabled 2 instances." in page
    bulk(signed_in, "enable", [numbers[0]])
    bulk(signed_in, "approve", numbers[1:])
    assert states(db) == {
        "site0": (True, False),
        "site1": (False, True),
        "site2": (True, True),
    }
    bulk(signed_in, "delete", [numbers[2], "not-a-number", 99999])
    assert list(states(db)) == ["site0", "site1"]


def test_bulk_refuses_an_unknown_action_and_an_empty_selection(signed_in, db):
    numbers = add(db, 1)
    assert bulk(signed_in, "explode", numbers).status_code == 400
    response = bulk(signed_in, "delete", [])
    assert response.status_code == 302
    assert "Tick the instances" in signed_in.get("/").get_data(as_text=True)
    assert len(states(db)) == 1
    # Without the CSRF token nothing happens.
    refused = signed_in.post(
        "/instances/bulk", data={"action": "delete", "number": numbers}
    )
    assert refused.status_code == 400
    assert len(states(db)) == 1


def test_the_filtered_list_exports_as_csv(make_app, user):
    app = make_app(CRAWLED_FIELDS_SETTINGS={"languages": {}})
    db = Database(app)
    add(
        db,
        3,
        first_organisation='=HYPERLINK("http://x")',
        crawled={"languages": ["en"]},
    )
    client = app.test_client()
    Login(client)()
    response = client.get("/instances.csv?q=site")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == 3
    first = next(r for r in rows if r["url"] == "https://site0.example.org")
    # A cell a spreadsheet would run as a formula is quoted.
    assert first["organisation"] == '\'=HYPERLINK("http://x")'
    assert first["languages"] == '["en"]'
    assert first["enabled"] == "True"
    filtered = client.get("/instances.csv?organisation=nothing").get_data(True)
    assert filtered.strip().count("\n") == 0  # the header alone

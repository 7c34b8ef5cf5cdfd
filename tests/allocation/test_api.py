"""The allocation admin API: records, bad input, the ledger, uploads, change log."""

from __future__ import annotations

from io import BytesIO

import pytest
from sqlalchemy import func, select

from allocation.models import Allocation
from allocation.sacct import NOT_TEXT_PROBLEM
from tests.allocation.example import (
    build_kep_site,
    eight_days_of_cpu,
    eight_days_of_disk,
)
from tracker.audit.models import AuditEvent
from tracker.extensions import db

API = "/api/allocation"


@pytest.fixture
def site(app):
    with app.app_context():
        return build_kep_site()


def count_allocations(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Allocation.id)))


def test_records_need_a_token(client):
    response = client.get(f"{API}/projects")
    assert response.status_code == 401
    assert response.get_json()["error"] == "Unauthorized"


def test_create_show_update_list_and_delete_a_project(client, auth_headers):
    created = client.post(
        f"{API}/projects",
        json={"name": "Physics", "allocation_mode": "shared"},
        headers=auth_headers,
    )
    assert created.status_code == 201
    project = created.get_json()
    assert created.headers["Location"].endswith(f"{API}/projects/{project['id']}")
    assert (project["allocation_mode"], project["parent_id"]) == ("shared", None)

    child = client.post(
        f"{API}/projects",
        json={"name": "Optics", "parent_id": project["id"], "start_date": "2100-01-01"},
        headers=auth_headers,
    ).get_json()
    assert child["start_date"] == "2100-01-01"
    assert child["allocation_mode"] == "private"

    changed = client.patch(
        f"{API}/projects/{child['id']}",
        json={"description": "Lasers"},
        headers=auth_headers,
    )
    assert changed.get_json()["description"] == "Lasers"
    page = client.get(f"{API}/projects?per_page=1", headers=auth_headers).get_json()
    assert (page["total"], page["pages"], len(page["items"])) == (2, 2, 1)

    in_use = client.delete(f"{API}/projects/{project['id']}", headers=auth_headers)
    assert in_use.status_code == 409
    assert (
        client.delete(f"{API}/projects/{child['id']}", headers=auth_headers).status_code
        == 204
    )
    assert (
        client.get(f"{API}/projects/{child['id']}", headers=auth_headers).status_code
        == 404
    )


def test_an_allocation_whose_grant_belongs_to_another_project_is_refused(
    app, client, auth_headers, site
):
    before = count_allocations(app)
    # Grant 1 is ProjectA's; pool Q1PD is ProjectD's.
    response = client.post(
        f"{API}/allocations",
        json={"grant_id": 1, "allocation_pool_id": site["q1pd"], "quantity": 5},
        headers=auth_headers,
    )
    assert response.status_code == 400
    body = response.get_json()
    assert body["field"] == "grant_id"
    assert "'ProjectA'" in body["message"] and "'ProjectD'" in body["message"]
    assert count_allocations(app) == before

    # Moving an existing allocation onto the wrong pool is refused the same way.
    moved = client.patch(
        f"{API}/allocations/1",
        json={"allocation_pool_id": site["q1pd"]},
        headers=auth_headers,
    )
    assert moved.status_code == 400
    assert moved.get_json()["field"] == "grant_id"


def test_the_database_itself_refuses_a_mismatched_allocation(app, site):
    from sqlalchemy.exc import IntegrityError

    with app.app_context():
        db.session.add(
            Allocation(
                grant_id=1,
                allocation_pool_id=site["q1pd"],
                project_id=site["ProjectD"],
                quantity=1,
            )
        )
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


@pytest.mark.parametrize(
    ("path", "body", "field", "message"),
    [
        ("projects", {}, "name", "is required"),
        ("projects", {"name": 5}, "name", "must be a string"),
        ("projects", {"name": "x" * 101}, "name", "at most 100"),
        (
            "projects",
            {"name": "p", "allocation_mode": "capped"},
            "allocation_mode",
            "one of",
        ),
        (
            "projects",
            {"name": "p", "parent_id": 999},
            "parent_id",
            "no Project with id 999",
        ),
        ("projects", {"name": "p", "parent_id": "1"}, "parent_id", "integer id"),
        ("projects", {"name": "p", "colour": "red"}, "colour", "not a field"),
        (
            "projects",
            {"name": "p", "start_date": "2100-02-01", "end_date": "2100-01-01"},
            "end_date",
            "on or after start_date",
        ),
        ("schemes", {"name": "s", "opened": "yesterday"}, "opened", "YYYY-MM-DD"),
        (
            "resource-pools",
            {"name": "r", "units": "h", "function": "median"},
            "function",
            "one of",
        ),
        (
            "periods",
            {"name": "q", "start": "2100-01-01", "end": "2100-01-01"},
            "end",
            "after start",
        ),
        (
            "allocations",
            {"grant_id": 1, "allocation_pool_id": 1, "quantity": True},
            "quantity",
            "a number",
        ),
        (
            "allocations",
            {"grant_id": 1, "allocation_pool_id": 1, "quantity": 1e300},
            "quantity",
            "at most 1e+15",
        ),
        (
            "allocations",
            {"grant_id": 1, "allocation_pool_id": 1, "quantity": -5},
            "quantity",
            "negative",
        ),
        (
            "resources",
            {"machine_id": 1, "resource_pool_id": 1, "name": "x", "quantity": "-5 GB"},
            "quantity",
            "cannot be negative (-5 GB): an amount of disk space",
        ),
    ],
)
def test_malformed_bodies_are_refused_naming_the_field(
    client, auth_headers, site, path, body, field, message
):
    response = client.post(f"{API}/{path}", json=body, headers=auth_headers)
    assert response.status_code == 400, response.get_json()
    payload = response.get_json()
    assert payload["field"] == field
    assert message in payload["message"]


def test_a_body_that_is_not_a_json_object_is_refused(client, auth_headers):
    for data in ("not json", "[1, 2]"):
        response = client.post(
            f"{API}/projects",
            data=data,
            headers={**auth_headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 400
        assert response.get_json()["field"] == "body"


def test_a_duplicate_name_is_a_conflict_naming_the_field(client, auth_headers, site):
    response = client.post(
        f"{API}/machines", json={"name": "brecca"}, headers=auth_headers
    )
    assert response.status_code == 409
    assert response.get_json()["field"] == "name"


def test_a_project_cannot_become_its_own_ancestor(client, auth_headers, site):
    response = client.patch(
        f"{API}/projects/{site['InstituteC']}",
        json={"parent_id": site["ProjectD"]},
        headers=auth_headers,
    )
    assert response.status_code == 400
    assert response.get_json()["field"] == "parent_id"


def test_uploads_import_usage_and_the_ledger_shows_the_kep_example(
    client, auth_headers, site
):
    cpu = client.post(
        f"{API}/usage/sacct",
        data="\n".join(eight_days_of_cpu()),
        headers={**auth_headers, "Content-Type": "text/plain"},
    )
    assert cpu.status_code == 201
    operation = cpu.get_json()
    assert cpu.headers["Location"].endswith(f"/api/batch-operations/{operation['id']}")
    assert (operation["status"], operation["result"]) == ("finished", "successful")
    assert operation["output"]["imported"] == 8

    disk = client.post(
        f"{API}/usage/disk",
        data={"file": (BytesIO("\n".join(eight_days_of_disk()).encode()), "du.txt")},
        headers=auth_headers,
        content_type="multipart/form-data",
    )
    assert disk.status_code == 201

    lines = client.get(
        f"{API}/ledger?period_id={site['period']}", headers=auth_headers
    ).get_json()["items"]
    by_pool = {line["allocation_pool_id"]: line for line in lines}
    q1pa, q1pd = by_pool[site["q1pa"]], by_pool[site["q1pd"]]
    assert (q1pa["allocated"], q1pa["used"], q1pa["exceeded"]) == (600, 100, False)
    assert (q1pd["allocated"], q1pd["used"], q1pd["exceeded"]) == (60, 700, True)
    assert q1pd["status"] == "exceeded"

    usage = client.get(
        f"{API}/allocation-pools/{site['q1pd']}/usage", headers=auth_headers
    ).get_json()
    assert [day["used"] for day in usage["days"]] == [0] + [100] * 7


def test_an_upload_with_bad_lines_reports_their_numbers(client, auth_headers, site):
    lines = eight_days_of_cpu()
    lines[2] = (
        "1002|brecca|Nobody|u|main|2100-01-02T08:00:00|2100-01-02T18:00:00|10:00:00|10|COMPLETED"
    )
    response = client.post(
        f"{API}/usage/sacct",
        data="\n".join(lines),
        headers={**auth_headers, "Content-Type": "text/plain"},
    )
    operation = response.get_json()
    assert operation["result"] == "partial"
    assert operation["progress"]["failed"] == 1
    assert operation["output"]["problems"] == [
        {
            "line": 3,
            "message": "unknown account 'Nobody': "
            "no project or account map of this name",
        }
    ]


def test_an_upload_that_is_not_sacct_output_is_refused(client, auth_headers, site):
    response = client.post(
        f"{API}/usage/sacct",
        data="hello|world\n1|2\n",
        headers={**auth_headers, "Content-Type": "text/plain"},
    )
    assert response.status_code == 400
    assert response.get_json()["field"] == "body"
    assert "not a sacct header" in response.get_json()["message"]
    bad_bytes = client.post(
        f"{API}/usage/sacct",
        data=b"\xff\xfe\x00",
        headers={**auth_headers, "Content-Type": "text/plain"},
    )
    assert bad_bytes.status_code == 400
    # Sent as a multipart file, the field named is the file's.
    as_file = client.post(
        f"{API}/usage/sacct",
        data={"file": (BytesIO(b"hello|world\n1|2\n"), "x.txt")},
        headers=auth_headers,
        content_type="multipart/form-data",
    )
    assert as_file.status_code == 400
    assert as_file.get_json()["field"] == "file"


def test_a_line_that_is_not_utf8_is_reported_and_the_rest_imported(
    client, auth_headers, site
):
    lines = eight_days_of_cpu()
    body = "\n".join(lines).encode().replace(b"|elliott|", b"|ell\xe9ott|", 1)
    response = client.post(
        f"{API}/usage/sacct",
        data=body,
        headers={**auth_headers, "Content-Type": "text/plain"},
    )
    assert response.status_code == 201, response.get_json()
    output = response.get_json()["output"]
    assert output["problems"] == [{"line": 2, "message": NOT_TEXT_PROBLEM}]
    assert output["imported"] == 7


def test_ledger_arguments_are_checked(client, auth_headers):
    response = client.get(f"{API}/ledger?period_id=abc", headers=auth_headers)
    assert response.status_code == 400
    assert response.get_json()["field"] == "period_id"


def test_the_change_log_says_who_changed_what(app, client, auth_headers):
    created = client.post(
        f"{API}/machines", json={"name": "avoca"}, headers=auth_headers
    ).get_json()
    client.patch(
        f"{API}/machines/{created['id']}",
        json={"description": "the new one"},
        headers=auth_headers,
    )
    client.delete(f"{API}/machines/{created['id']}", headers=auth_headers)
    changes = client.get(
        f"{API}/changes?model=Machine", headers=auth_headers
    ).get_json()
    actions = [(c["action"], c["actor"], c["object_id"]) for c in changes["items"]]
    assert actions == [
        ("delete", "ada", created["id"]),
        ("update", "ada", created["id"]),
        ("create", "ada", created["id"]),
    ]
    assert changes["items"][1]["changes"] == {"description": ["", "the new one"]}
    with app.app_context():
        allocation_events = select(func.count(AuditEvent.id)).where(
            AuditEvent.domain == "allocation"
        )
        assert db.session.scalar(allocation_events) == 3


def test_an_upload_says_how_sacct_printed_it(client, auth_headers, site):
    body = "7;projectd;2100-01-02T00:00:00;2100-01-02T02:00:00;7200;3;COMPLETED\n"
    query = "format=JobID,Account,Start,End,ElapsedRaw,NCPUS,State&delimiter=;"
    headers = {**auth_headers, "Content-Type": "text/plain"}
    refused = client.post(f"{API}/usage/sacct?{query}", data=body, headers=headers)
    assert refused.status_code == 400
    assert "Cluster (or name the machine" in refused.get_json()["message"]
    response = client.post(
        f"{API}/usage/sacct?{query}&machine=brecca", data=body, headers=headers
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["output"]["imported"] == 1
    bad = client.post(f"{API}/usage/sacct?delimiter=", data=body, headers=headers)
    assert bad.status_code == 400 and bad.get_json()["field"] == "delimiter"


def test_the_ledger_takes_periods_by_name_and_refuses_unknown_ones(
    client, auth_headers, site
):
    named = client.get(f"{API}/ledger?period=2100Q1", headers=auth_headers)
    assert named.status_code == 200 and named.get_json()["items"]
    unknown = client.get(f"{API}/ledger?period=zzz", headers=auth_headers)
    assert unknown.status_code == 400
    assert unknown.get_json()["field"] == "period"
    assert "no allocation period named 'zzz'" in unknown.get_json()["message"]

"""KEP 5's worked example, end to end: sacct and snapshot files in, ledger out."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from allocation.importing import import_sacct, import_snapshots
from allocation.ledger import LedgerFilter, ledger
from tests.allocation.example import (
    build_kep_site,
    eight_days_of_cpu,
    eight_days_of_disk,
)
from tracker.extensions import db

UTC_ZONE = ZoneInfo("UTC")


def test_kep_example_disk_peak_is_within_and_cpu_total_is_exceeded(app):
    with app.app_context():
        ids = build_kep_site()
        cpu = import_sacct(db.session, eight_days_of_cpu(), UTC_ZONE)
        disk = import_snapshots(db.session, eight_days_of_disk(), UTC_ZONE)
        db.session.commit()
        assert (cpu.imported, cpu.skipped, cpu.failed) == (8, 7, 0)
        assert (disk.imported, disk.failed) == (8, 0)

        lines = {line.pool_id: line for line in ledger(db.session)}

    q1pa = lines[ids["q1pa"]]
    assert (q1pa.project, q1pa.period, q1pa.resource_pool) == (
        "ProjectA",
        "2100Q1",
        "Disk Space",
    )
    assert q1pa.allocated == 600
    # The peak counts for disk space, not 7 * 100 KB.
    assert q1pa.used == pytest.approx(100)
    assert q1pa.days == 8
    assert q1pa.exceeded is False
    assert q1pa.remaining == pytest.approx(500)
    assert q1pa.used_percent == pytest.approx(16.67)

    q1pd = lines[ids["q1pd"]]
    assert (q1pd.project, q1pd.resource_pool) == ("ProjectD", "CPU Hours")
    assert q1pd.allocated == 60
    assert q1pd.used == 700
    assert q1pd.exceeded is True
    assert q1pd.remaining == -640
    assert q1pd.used_percent == pytest.approx(1166.67)


def test_kep_example_ledger_filters_by_project(app):
    with app.app_context():
        ids = build_kep_site()
        import_sacct(db.session, eight_days_of_cpu(), UTC_ZONE)
        db.session.commit()
        only_d = ledger(db.session, LedgerFilter(project_ids=[ids["ProjectD"]]))
    assert [(line.project, line.used) for line in only_d] == [("ProjectD", 700)]


def test_kep_example_typed_through_the_api_as_kep_states_it(client, auth_headers, app):
    """Units typed with the figures, the period's end as KEP gives it (inclusive)."""

    def post(collection: str, **body) -> dict:
        response = client.post(
            f"/api/allocation/{collection}", json=body, headers=auth_headers
        )
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    disk = post("resource-pools", name="Disk Space", units="KB", function="max")
    cpu = post("resource-pools", name="CPU Hours", units="CPU hours", function="sum")
    assert (disk["units"], cpu["units"]) == ("KB", "CPU-hours")
    for machine_name in ("brecca", "tango"):
        machine = post("machines", name=machine_name)
        post(
            "resources",
            machine_id=machine["id"],
            resource_pool_id=disk["id"],
            name="disk",
            quantity="2 TB",
        )
        post(
            "resources",
            machine_id=machine["id"],
            resource_pool_id=cpu["id"],
            name="cpu",
            quantity=64,
        )
    projects = {}
    for name, parent in [
        ("InstituteA", None),
        ("InstituteC", None),
        ("ProjectA", "InstituteA"),
        ("ProjectC", "InstituteC"),
        ("ProjectD", "ProjectC"),
    ]:
        parent_id = projects[parent]["id"] if parent else None
        projects[name] = post("projects", name=name, parent_id=parent_id)
    et = post("schemes", name="ET", opened="2100-01-01")
    elliott = post("schemes", name="Elliott", opened="2100-01-01")
    quarter = post("periods", name="2100Q1", start="2100-01-01", last_day="2100-03-31")
    assert (quarter["end"], quarter["last_day"]) == ("2100-04-01", "2100-03-31")

    def grant(project: str, scheme: dict) -> dict:
        return post(
            "grants",
            project_id=projects[project]["id"],
            scheme_id=scheme["id"],
            date="2100-01-01",
            begins="2100-01-01",
            expires="2100-12-31",
        )

    q1pa = post(
        "allocation-pools",
        project_id=projects["ProjectA"]["id"],
        period_id=quarter["id"],
        resource_pool_id=disk["id"],
    )
    q1pd = post(
        "allocation-pools",
        project_id=projects["ProjectD"]["id"],
        period_id=quarter["id"],
        resource_pool_id=cpu["id"],
    )
    post(
        "allocations",
        grant_id=grant("ProjectA", et)["id"],
        allocation_pool_id=q1pa["id"],
        quantity="100KB",
    )
    post(
        "allocations",
        grant_id=grant("ProjectA", elliott)["id"],
        allocation_pool_id=q1pa["id"],
        quantity="0.5 MB",
    )
    post(
        "allocations",
        grant_id=grant("ProjectD", et)["id"],
        allocation_pool_id=q1pd["id"],
        quantity="10 CPU-hours",
    )
    post(
        "allocations",
        grant_id=grant("ProjectD", elliott)["id"],
        allocation_pool_id=q1pd["id"],
        quantity=50,
    )
    wrong = client.post(
        "/api/allocation/allocations",
        json={"grant_id": 1, "allocation_pool_id": q1pd["id"], "quantity": "5 GB"},
        headers=auth_headers,
    )
    assert wrong.status_code == 400 and wrong.get_json()["field"] == "quantity"

    # KEP's usage, the last of it on the period's last day, 31 March.
    sacct = [
        *eight_days_of_cpu()[:-2],
        "1099|brecca|projectd|elliott|main|2100-03-31T08:00:00|2100-03-31T18:00:00"
        "|10:00:00|10|COMPLETED",
    ]
    for kind, lines in (("sacct", sacct), ("disk", eight_days_of_disk())):
        response = client.post(
            f"/api/allocation/usage/{kind}",
            data="\n".join(lines) + "\n",
            headers={**auth_headers, "Content-Type": "text/plain"},
        )
        assert response.status_code == 201, response.get_json()
    items = client.get("/api/allocation/ledger", headers=auth_headers).get_json()[
        "items"
    ]
    by_pool = {item["allocation_pool_id"]: item for item in items}
    assert (by_pool[q1pa["id"]]["allocated"], by_pool[q1pa["id"]]["used"]) == (
        600.0,
        100.0,
    )
    assert by_pool[q1pa["id"]]["exceeded"] is False
    assert (by_pool[q1pd["id"]]["allocated"], by_pool[q1pd["id"]]["used"]) == (
        60.0,
        700.0,
    )
    assert by_pool[q1pd["id"]]["exceeded"] is True

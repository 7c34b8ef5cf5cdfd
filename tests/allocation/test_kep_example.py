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

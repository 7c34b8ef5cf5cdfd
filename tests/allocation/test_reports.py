"""Reports: usage per user and account, utilisation, burn rate, CSV, Slurm limits."""

from __future__ import annotations

import csv
import io
from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy import select

from allocation.accounts import set_account_map
from allocation.importing import import_sacct, import_snapshots
from allocation.ledger import LedgerFilter, ledger
from allocation.models import AllocationPeriod, Resource
from allocation.reports import burn_rate, machine_utilisation, usage_by, usage_csv
from tests.allocation.example import (
    SACCT_HEADER,
    build_kep_site,
    eight_days_of_cpu,
    eight_days_of_disk,
)
from tracker.extensions import db

UTC = ZoneInfo("UTC")
MORE_JOBS = [
    SACCT_HEADER,
    "501|tango|projectd|ada|main|2100-01-03T00:00:00|2100-01-03T05:00:00|05:00:00|2|COMPLETED",
    "502|tango|pd-extra|ada|main|2100-01-03T00:00:00|2100-01-03T01:00:00|01:00:00|4|COMPLETED",
]


def site_with_usage(app, scaling: float = 1.0) -> dict:
    with app.app_context():
        ids = build_kep_site()
        for resource in db.session.scalars(select(Resource)):
            if resource.name == "cpu":
                resource.quantity = 10  # CPUs
                if resource.machine.name == "tango":
                    resource.scaling_factor = scaling
            else:
                resource.quantity = 1000  # KB
        set_account_map(db.session, "pd-extra", "ProjectD")
        import_sacct(db.session, eight_days_of_cpu(), UTC)
        import_sacct(db.session, MORE_JOBS, UTC)
        import_snapshots(db.session, eight_days_of_disk(), UTC)
        db.session.commit()
    return ids


def test_usage_per_user_and_per_account_within_a_project(app):
    ids = site_with_usage(app, scaling=2.0)
    with app.app_context():
        period = db.session.get(AllocationPeriod, ids["period"])
        # ProjectC's sub-project ProjectD ran everything.
        users = usage_by(db.session, ids["ProjectC"], period, UTC, "user")
        accounts = usage_by(db.session, ids["ProjectD"], period, UTC, "account")
    assert [(u.name, u.cpu_hours, u.charged_hours, u.jobs) for u in users] == [
        ("elliott", 700.0, 700.0, 8),
        ("ada", 14.0, 28.0, 2),
    ]
    # Accounts are kept lower-case, as Slurm keeps them.
    assert [(a.name, a.cpu_hours) for a in accounts] == [
        ("projectd", 710.0),
        ("pd-extra", 4.0),
    ]


def test_machine_capacity_and_utilisation_over_the_period(app):
    ids = site_with_usage(app)
    with app.app_context():
        period = db.session.get(AllocationPeriod, ids["period"])
        rows = {
            (r.machine, r.resource): r
            for r in machine_utilisation(db.session, period, UTC)
        }
    hours = 90 * 24  # 1 January to 31 March 2100
    brecca = rows[("brecca", "cpu")]
    assert (brecca.capacity, brecca.used) == (10 * hours, 700.0)
    assert brecca.percent == round(100 * 700 / (10 * hours), 2)
    assert rows[("tango", "cpu")].used == 14.0
    disk = rows[("brecca", "disk")]
    assert (disk.capacity, disk.used, disk.percent) == (1000, 100.0, 10.0)


def test_burn_rate_and_projected_exhaustion(app):
    ids = site_with_usage(app)
    with app.app_context():
        period = db.session.get(AllocationPeriod, ids["period"])
        lines = {line.pool_id: line for line in ledger(db.session, LedgerFilter())}
        cpu = lines[ids["q1pd"]]
        disk = lines[ids["q1pa"]]
        assert burn_rate(cpu, period, date(2100, 1, 10)).state == "exhausted"
        assert burn_rate(disk, period, date(2100, 1, 10)).state == "not-summed"
        assert burn_rate(cpu, period, date(2099, 12, 1)).state == "not-started"
        # 714 CPU-hours in 10 days: 71.4 a day; 5,000 allocated lasts 61 days more.
        bigger = type(cpu)(**{**cpu.__dict__, "allocated": 5000.0})
        rate = burn_rate(bigger, period, date(2100, 1, 10))
        assert (rate.per_day, rate.days_elapsed, rate.state) == (71.4, 10, "projected")
        assert rate.exhausted_on == date(2100, 3, 12)  # 4,286 left: 60.03 days
        huge = type(cpu)(**{**cpu.__dict__, "allocated": 10**6})
        assert burn_rate(huge, period, date(2100, 1, 10)).state == "lasts"


def test_csv_exports_and_report_pages(app, client, user, login):
    ids = site_with_usage(app)
    login()
    ledger_csv = client.get(f"/allocation/ledger.csv?period_id={ids['period']}")
    assert ledger_csv.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(ledger_csv.get_data(as_text=True))))
    assert {(r["project"], r["used"], r["exceeded"]) for r in rows} == {
        ("ProjectA", "100.0", "no"),
        ("ProjectD", "714.0", "yes"),
    }
    usage = client.get(f"/allocation/usage.csv?period_id={ids['period']}")
    usage_rows = list(csv.DictReader(io.StringIO(usage.get_data(as_text=True))))
    assert usage_rows[0].keys() >= {"day", "machine", "project", "quantity"}
    assert (
        sum(float(r["quantity"]) for r in usage_rows if r["resource"] == "cpu") == 714
    )
    machines = client.get(f"/allocation/machines?period_id={ids['period']}")
    assert 'data-machine="brecca" data-resource="cpu"' in machines.get_data(
        as_text=True
    )
    page = client.get(
        f"/allocation/projects/{ids['ProjectD']}/usage?period_id={ids['period']}"
    ).get_data(as_text=True)
    assert 'data-name="elliott"' in page and 'data-name="pd-extra"' in page
    pool = client.get(f"/allocation/pools/{ids['q1pd']}").get_data(as_text=True)
    assert 'id="runs-out"' in pool


def test_slurm_limits_print_remaining_cpu_minutes_per_account_and_cluster(app):
    ids = site_with_usage(app, scaling=2.0)
    runner = app.test_cli_runner()
    with app.app_context():
        pool = db.session.get(AllocationPeriod, ids["period"])
        assert pool is not None
    exceeded = runner.invoke(args=["allocation", "slurm-limits", "--period", "2100Q1"])
    assert exceeded.exit_code == 0, exceeded.output
    # ProjectD is over its allocation: nothing remains on either cluster.
    assert (
        "sacctmgr --immediate modify account where name=projectd cluster=brecca "
        "set GrpTRESMins=cpu=0" in exceeded.output
    )
    assert "name=pd-extra cluster=tango set GrpTRESMins=cpu=0" in exceeded.output
    with app.app_context():
        from allocation.models import Allocation

        allocation = db.session.scalars(
            select(Allocation).where(Allocation.allocation_pool_id == ids["q1pd"])
        ).first()
        allocation.quantity += 1000  # 1,060 allocated, 728 used (tango counts x2)
        db.session.commit()
    remaining = runner.invoke(args=["allocation", "slurm-limits", "--period", "2100Q1"])
    # 332 CPU-hours left: 19,920 raw minutes on brecca, half of it on tango.
    assert "name=projectd cluster=brecca set GrpTRESMins=cpu=19920" in remaining.output
    assert "name=projectd cluster=tango set GrpTRESMins=cpu=9960" in remaining.output
    assert "Disk" not in remaining.output
    nothing = runner.invoke(args=["allocation", "slurm-limits"])
    assert nothing.exit_code == 2 and "no allocation period contains today" in (
        nothing.output
    )


def test_usage_csv_reads_the_database_a_batch_at_a_time(app):
    ids = site_with_usage(app)
    with app.app_context():
        period = db.session.get(AllocationPeriod, ids["period"])
        whole = list(usage_csv(db.session, period))
        in_pairs = list(usage_csv(db.session, period, batch=2))
    assert len(whole) == 1 + 8 + 1 + 8  # header, brecca cpu, tango cpu, disk
    assert sorted(in_pairs) == sorted(whole)

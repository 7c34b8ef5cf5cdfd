"""Usage import: sacct and snapshots, re-imports, bad lines, scaling, days."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from allocation import pg_bulk
from allocation.accounts import set_account_map
from allocation.importing import import_sacct, import_snapshots
from allocation.ledger import ledger
from allocation.models import Job, Resource, Usage
from tests.allocation.example import (
    SACCT_HEADER,
    build_kep_site,
    eight_days_of_cpu,
    eight_days_of_disk,
)
from tracker.extensions import db

UTC_ZONE = ZoneInfo("UTC")


def usage_rows() -> list[tuple]:
    return db.session.execute(
        select(
            Usage.resource_id,
            Usage.project_id,
            Usage.day,
            Usage.quantity,
            Usage.raw_quantity,
            Usage.count,
        ).order_by(Usage.resource_id, Usage.project_id, Usage.day)
    ).all()


def test_importing_the_same_sacct_file_twice_changes_nothing(app):
    with app.app_context():
        build_kep_site()
        first = import_sacct(db.session, eight_days_of_cpu(), UTC_ZONE)
        db.session.commit()
        jobs, usage = db.session.scalar(select(func.count(Job.id))), usage_rows()
        ledger_before = ledger(db.session)

        again = import_sacct(db.session, eight_days_of_cpu(), UTC_ZONE)
        db.session.commit()
        assert (first.imported, again.imported, again.already_present) == (8, 0, 8)
        assert db.session.scalar(select(func.count(Job.id))) == jobs == 8
        assert usage_rows() == usage
        assert ledger(db.session) == ledger_before


def test_a_file_with_malformed_lines_imports_the_good_ones(app):
    lines = [
        SACCT_HEADER,
        "1|brecca|ProjectD|u|main|2100-01-02T00:00:00|2100-01-02T01:00:00|01:00:00|2|COMPLETED",
        "2|brecca|ProjectD|u|main|2100-01-02T00:00:00|2100-01-02T01:00:00|01:00:00",
        "3|brecca|ProjectD|u|main|yesterday|2100-01-02T01:00:00|01:00:00|2|COMPLETED",
        "4|brecca|ProjectD|u|main|2100-01-02T00:00:00|2100-01-02T01:00:00|1 hour|2|FAILED",  # noqa: E501
        "5|brecca|ProjectD|u|main|2100-01-02T00:00:00|2100-01-02T01:00:00|01:00:00|two|COMPLETED",
        "6|brecca|NoSuchProject|u|main|2100-01-02T00:00:00|2100-01-02T01:00:00|01:00:00|2|COMPLETED",
        "7|nowhere|ProjectD|u|main|2100-01-02T00:00:00|2100-01-02T01:00:00|01:00:00|2|COMPLETED",
        "8|brecca|ProjectD|u|main|2100-01-02T05:00:00|2100-01-02T01:00:00|01:00:00|2|COMPLETED",
        "9|brecca|ProjectD|u|main|2100-01-02T00:00:00|Unknown|01:00:00|2|RUNNING",
        "10|brecca|ProjectD|u|main|2100-01-02T00:00:00|2100-01-02T03:00:00|03:00:00|1|TIMEOUT",
    ]
    with app.app_context():
        build_kep_site()
        report = import_sacct(db.session, lines, UTC_ZONE)
        db.session.commit()
        assert (report.lines, report.imported, report.skipped, report.failed) == (
            10,
            2,
            1,
            7,
        )
        problems = dict(report.problems)
        assert sorted(problems) == [3, 4, 5, 6, 7, 8, 9]
        assert "expected 10 fields, found 8" in problems[3]
        assert "Start 'yesterday'" in problems[4]
        assert "Elapsed '1 hour'" in problems[5]
        assert "AllocCPUS 'two'" in problems[6]
        assert "unknown account 'NoSuchProject'" in problems[7]
        assert "unknown cluster 'nowhere'" in problems[8]
        assert "End is before Start" in problems[9]
        # 2 CPUs * 1 h + 1 CPU * 3 h on 2 January.
        assert [(row.day, row.quantity) for row in usage_rows()] == [
            (date(2100, 1, 2), 5.0)
        ]


def test_the_machine_scaling_factor_is_applied_once(app):
    with app.app_context():
        ids = build_kep_site()
        resource = db.session.scalar(
            select(Resource)
            .where(Resource.name == "cpu", Resource.resource_pool_id == ids["cpu"])
            .join(Resource.machine)
            .where(Resource.machine.has(name="brecca"))
        )
        resource.scaling_factor = 1.5
        db.session.commit()
        import_sacct(db.session, eight_days_of_cpu(), UTC_ZONE)
        import_sacct(db.session, eight_days_of_cpu(), UTC_ZONE)
        db.session.commit()
        total, raw = db.session.execute(
            select(func.sum(Usage.quantity), func.sum(Usage.raw_quantity))
        ).one()
        stored = db.session.scalar(select(func.sum(Job.cpu_hours)))
    assert (total, raw, stored) == (1050.0, 700.0, 700.0)


def test_cpu_hours_are_split_between_the_days_a_job_spans(app):
    lines = [
        SACCT_HEADER,
        # 4 CPUs from 22:00 to 04:00: 8 hours on the 1st, 16 on the 2nd.
        "77|tango|ProjectB|u|main|2100-01-01T22:00:00|2100-01-02T04:00:00|06:00:00|4|COMPLETED",
        # A step of the same job repeats it and is not charged again.
        "77.batch|tango|ProjectB|u|main|2100-01-01T22:00:00|2100-01-02T04:00:00|06:00:00|4|COMPLETED",
    ]
    with app.app_context():
        build_kep_site()
        report = import_sacct(db.session, lines, UTC_ZONE)
        db.session.commit()
        assert (report.imported, report.skipped) == (1, 1)
        assert [(row.day, row.quantity, row.count) for row in usage_rows()] == [
            (date(2100, 1, 1), 8.0, 1),
            (date(2100, 1, 2), 16.0, 1),
        ]


def test_days_follow_the_configured_time_zone(app):
    lines = [
        SACCT_HEADER,
        "5|tango|ProjectB|u|main|2100-01-01T23:30:00|2100-01-01T23:45:00|00:15:00|4|COMPLETED",
    ]
    with app.app_context():
        build_kep_site()
        import_sacct(db.session, lines, ZoneInfo("Australia/Melbourne"))
        db.session.commit()
        job = db.session.scalar(select(Job))
        assert job.started.isoformat() == "2100-01-01T12:30:00+00:00"
        assert [row.day for row in usage_rows()] == [date(2100, 1, 1)]


def test_snapshots_keep_the_daily_peak_and_a_repeat_changes_nothing(app):
    lines = [
        *eight_days_of_disk(),
        "ProjectA|brecca|50000|2100-01-02T18:00:00",  # lower than the morning's
        "ProjectA|brecca|lots|2100-01-03T18:00:00",
        "ProjectA|nowhere|1|2100-01-03T18:00:00",
        "Nobody|brecca|1|2100-01-03T18:00:00",
    ]
    with app.app_context():
        build_kep_site()
        first = import_snapshots(db.session, lines, UTC_ZONE)
        db.session.commit()
        rows = usage_rows()
        again = import_snapshots(db.session, lines, UTC_ZONE)
        db.session.commit()
        assert usage_rows() == rows
    assert (first.imported, first.failed) == (9, 3)
    assert again.failed == 3
    assert [line for line, _message in first.problems] == [11, 12, 13]
    assert [row.quantity for row in rows] == [0.0] + [100.0] * 7


def test_accounts_match_projects_whatever_their_case_or_through_a_map(app):
    lines = [
        SACCT_HEADER,
        # Slurm keeps accounts lower-case; the project is called ProjectD.
        "1|brecca|projectd|u|main|2100-01-02T00:00:00|2100-01-02T01:00:00|01:00:00|2|COMPLETED",
        "2|brecca|astro-lab|u|main|2100-01-02T00:00:00|2100-01-02T01:00:00|01:00:00|3|COMPLETED",
    ]
    with app.app_context():
        ids = build_kep_site()
        first = import_sacct(db.session, lines, UTC_ZONE)
        db.session.commit()
        assert (first.imported, first.failed) == (1, 1)
        assert "unknown account 'astro-lab'" in first.problems[0][1]
        set_account_map(db.session, "Astro-Lab", "projectd")
        db.session.commit()
        again = import_sacct(db.session, lines, UTC_ZONE)
        db.session.commit()
        assert (again.imported, again.already_present) == (1, 1)
        jobs = db.session.execute(
            select(Job.job_id, Job.project_id, Job.account).order_by(Job.job_id)
        ).all()
    assert jobs == [
        ("1", ids["ProjectD"], "projectd"),
        ("2", ids["ProjectD"], "astro-lab"),
    ]


def test_each_run_of_a_requeued_job_is_charged_once(app):
    lines = [
        SACCT_HEADER,
        "42|brecca|ProjectD|u|main|2100-01-02T00:00:00|2100-01-02T02:00:00|02:00:00|8|REQUEUED",
        "42|brecca|ProjectD|u|main|2100-01-02T03:00:00|2100-01-02T04:00:00|01:00:00|8|COMPLETED",
        "43|brecca|ProjectD|u|main|None|Unknown|00:00:00|8|CANCELLED by 0",
    ]
    with app.app_context():
        build_kep_site()
        first = import_sacct(db.session, lines, UTC_ZONE)
        again = import_sacct(db.session, lines, UTC_ZONE)
        db.session.commit()
        assert (first.imported, first.not_started, first.failed) == (2, 1, 0)
        assert (again.imported, again.already_present) == (0, 2)
        assert [(row.day, row.quantity) for row in usage_rows()] == [
            (date(2100, 1, 2), 24.0)
        ]


def test_a_zurich_job_across_the_spring_change_charges_cpus_times_elapsed(app):
    lines = [
        SACCT_HEADER,
        "7|brecca|ProjectD|u|main|2100-03-27T12:00:00|2100-03-30T12:00:00|2-23:00:00|100|COMPLETED",
    ]
    with app.app_context():
        build_kep_site()
        import_sacct(db.session, lines, ZoneInfo("Europe/Zurich"))
        db.session.commit()
        (line,) = [
            row for row in ledger(db.session) if row.resource_pool == "CPU Hours"
        ]
        assert line.used == 7100.0
        assert [row.quantity for row in usage_rows()] == [
            1200.0,
            2300.0,
            2400.0,
            1200.0,
        ]


def test_job_times_are_stored_as_the_column_stores_them(app):
    """Times go in without datetimes on SQLite: as the text SQLAlchemy writes."""
    from datetime import UTC, datetime

    from allocation.importing import _sqlite_utc_text, _utc_texts_match

    with app.app_context():
        build_kep_site()
        if db.engine.dialect.name == "sqlite":
            assert _utc_texts_match(db.session)
            assert _sqlite_utc_text(4_102_488_000) == "2100-01-01 12:00:00.000000"
        import_sacct(db.session, eight_days_of_cpu(), UTC_ZONE)
        db.session.commit()
        first = db.session.scalar(select(Job).where(Job.job_id == "1002"))
        assert first.started == datetime(2100, 1, 2, 8, tzinfo=UTC)
        assert first.ended == datetime(2100, 1, 2, 18, tzinfo=UTC)


def test_postgresql_bulk_writes_and_the_generic_ones_store_the_same(app, monkeypatch):
    """COPY on PostgreSQL, SQLAlchemy's bulk statements for other drivers (and
    SQLite's own path): the same jobs, the same usage, re-imports included."""
    lines = eight_days_of_cpu()
    with app.app_context():
        build_kep_site()
        import_sacct(db.session, lines, UTC_ZONE)
        db.session.commit()
        expected = usage_rows()
        jobs = db.session.scalar(select(func.count(Job.id)))
        db.session.execute(Usage.__table__.delete())
        db.session.execute(Job.__table__.delete())
        db.session.commit()

        monkeypatch.setattr(pg_bulk, "usable", lambda _session: False)
        first = import_sacct(db.session, lines[:9], UTC_ZONE)
        rest = import_sacct(db.session, lines, UTC_ZONE)
        db.session.commit()
        assert first.imported + rest.imported == jobs
        assert rest.already_present == first.imported
        assert usage_rows() == expected

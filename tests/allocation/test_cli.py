"""manage.py allocation ...: imports with a summary, wrong arguments give usage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from allocation.models import Job
from allocation.usage_jobs import SACCT, UsageImportSettings, run_usage_import
from tests.allocation.example import (
    SACCT_HEADER,
    build_kep_site,
    eight_days_of_cpu,
    eight_days_of_disk,
)
from tests.conftest import build_app
from tracker.batch.models import BatchOperation
from tracker.extensions import db
from tracker.models import import_all_models

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, name: str, lines: list[str]) -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_import_usage_prints_a_summary_and_records_a_batch_operation(app, tmp_path):
    with app.app_context():
        build_kep_site()
    runner = app.test_cli_runner()
    sacct = write(tmp_path, "sacct.txt", eight_days_of_cpu())
    result = runner.invoke(args=["allocation", "import-usage", sacct])
    assert result.exit_code == 0, result.output
    assert (
        "15 lines: 8 imported, 0 already present, 7 skipped: job steps and "
        "unfinished jobs (0 never started), 0 with" in result.output
    )
    again = runner.invoke(args=["allocation", "import-usage", sacct])
    assert "0 imported, 8 already present" in again.output

    disk = write(tmp_path, "du.txt", eight_days_of_disk())
    assert runner.invoke(args=["allocation", "import-disk", disk]).exit_code == 0
    ledger = runner.invoke(args=["allocation", "ledger", "--period", "2100Q1"])
    assert "ProjectD" in ledger.output and "exceeded" in ledger.output
    with app.app_context():
        assert len(db.session.scalars(select(Job)).all()) == 8
        operations = db.session.scalars(select(BatchOperation)).all()
        assert [op.operation_type for op in operations] == [
            "allocation.import-sacct",
            "allocation.import-sacct",
            "allocation.import-disk",
        ]


def test_bad_lines_are_listed_with_their_numbers(app, tmp_path):
    with app.app_context():
        build_kep_site()
    lines = eight_days_of_cpu()
    lines[3] = "garbage"
    result = app.test_cli_runner().invoke(
        args=["allocation", "import-usage", write(tmp_path, "s.txt", lines)]
    )
    assert result.exit_code == 3  # the rest imported
    assert "s.txt:4: expected 10 fields, found 1" in result.output
    assert "1 with problems" in result.output


def test_a_file_that_is_not_sacct_output_fails_cleanly(app, tmp_path):
    result = app.test_cli_runner().invoke(
        args=["allocation", "import-usage", write(tmp_path, "x.txt", ["a|b", "1|2"])]
    )
    assert result.exit_code == 1
    assert "not a sacct header" in result.output


def run_manage(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "TRACKER_INSTANCE_PATH": str(tmp_path / "instance"),
        },
        timeout=120,
    )


def test_wrong_arguments_give_usage_not_a_traceback(tmp_path):
    existing = write(tmp_path, "exists.txt", ["x"])
    for args, text in [
        (("allocation", "import-usage"), "Missing argument 'FILE'"),
        (("allocation", "import-usage", "/no/such/file"), "does not exist"),
        (("allocation", "import-usage", existing, "b"), "unexpected extra argument"),
        (("allocation", "sideways"), "No such command"),
    ]:
        result = run_manage(tmp_path, *args)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert text in result.stderr
    help_text = run_manage(tmp_path, "allocation", "--help").stdout
    assert "import-usage" in help_text and "Import Slurm accounting" in help_text


def test_noheader_output_imports_with_format_and_machine(app, tmp_path):
    with app.app_context():
        build_kep_site()
    runner = app.test_cli_runner()
    path = write(
        tmp_path,
        "noheader.txt",
        [
            "9|projectd|2100-01-02T00:00:00|2100-01-02T01:00:00|01:00:00|4|COMPLETED",
            "10|PROJECTD|None|Unknown|00:00:00|4|PENDING",
        ],
    )
    refused = runner.invoke(args=["allocation", "import-usage", path])
    assert refused.exit_code == 1
    assert "give the --format list" in refused.output
    fmt = "JobID,Account,Start,End,Elapsed%15,NCPUS,State"
    no_machine = runner.invoke(
        args=["allocation", "import-usage", path, "--format", fmt]
    )
    assert no_machine.exit_code == 1
    assert "Cluster (or name the machine" in no_machine.output
    result = runner.invoke(
        args=["allocation", "import-usage", path, "--format", fmt, "--machine", "tango"]
    )
    assert result.exit_code == 0, result.output
    assert "1 imported" in result.output and "(1 never started)" in result.output
    bad = runner.invoke(args=["allocation", "import-usage", path, "--delimiter", ""])
    assert bad.exit_code == 2 and "--delimiter" in bad.output


def test_account_maps_from_the_command_line_and_the_ledger_period_argument(
    app, tmp_path
):
    with app.app_context():
        build_kep_site()
    runner = app.test_cli_runner()
    mapped = runner.invoke(args=["allocation", "map-account", "PhysGroup", "projectd"])
    assert mapped.exit_code == 0, mapped.output
    assert "'physgroup' is charged to project 'projectd'" in mapped.output
    listed = runner.invoke(args=["allocation", "accounts"])
    assert "physgroup" in listed.output and "ProjectD" in listed.output
    nowhere = runner.invoke(args=["allocation", "map-account", "x", "Nobody"])
    assert nowhere.exit_code == 2 and "no project named 'Nobody'" in nowhere.output
    sacct = write(
        tmp_path,
        "sacct.txt",
        [
            "JobID|Cluster|Account|Start|End|Elapsed|AllocCPUS|State",
            "1|brecca|physgroup|2100-01-02T00:00:00|2100-01-02T10:00:00|10:00:00|7|COMPLETED",
        ],
    )
    runner.invoke(args=["allocation", "import-usage", sacct])
    for args in (["2100Q1"], ["--period", "2100Q1"]):
        ledger = runner.invoke(args=["allocation", "ledger", *args])
        assert ledger.exit_code == 0, ledger.output
        assert "70 CPU-hours" in ledger.output and "ProjectD" in ledger.output
    missing = runner.invoke(args=["allocation", "ledger", "2099Q9"])
    assert missing.exit_code == 2 and "no allocation period" in missing.output
    assert (
        runner.invoke(args=["allocation", "unmap-account", "PHYSGROUP"]).exit_code == 0
    )
    again = runner.invoke(args=["allocation", "unmap-account", "physgroup"])
    assert again.exit_code == 2


def test_a_line_that_is_not_utf8_is_reported_and_the_rest_imported(app, tmp_path):
    with app.app_context():
        build_kep_site()
    lines = eight_days_of_cpu()
    path = tmp_path / "latin1.txt"
    data = "\n".join(lines).encode()
    fourth = lines[3].encode()
    path.write_bytes(data.replace(fourth, fourth.replace(b"|main|", b"|m\xe9in|")))
    result = app.test_cli_runner().invoke(
        args=["allocation", "import-usage", str(path)]
    )
    assert result.exit_code == 3, result.output  # the rest imported
    assert "latin1.txt:4: not UTF-8 text" in result.output
    assert "8 imported" in result.output and "1 with problems" in result.output


def test_a_headerless_file_counts_every_line_in_its_progress(app, tmp_path):
    with app.app_context():
        build_kep_site()
    path = write(
        tmp_path,
        "noheader.txt",
        ["9|projectd|2100-01-02T00:00:00|2100-01-02T01:00:00|01:00:00|4|COMPLETED"],
    )
    fmt = "JobID,Account,Start,End,Elapsed,NCPUS,State"
    result = app.test_cli_runner().invoke(
        args=["allocation", "import-usage", path, "--format", fmt, "--machine", "tango"]
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        operation = db.session.scalars(select(BatchOperation)).one()
        assert (operation.total, operation.done) == (1, 1)


def test_an_import_killed_midway_does_not_block_the_next_one(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.sqlite'}"
    app = build_app(url, tmp_path / "instance")
    with app.app_context():
        import_all_models()
        db.create_all()
        build_kep_site()
        db.session.commit()
    line = (
        "{n}|brecca|ProjectD|u|main|2100-01-02T00:00:00|2100-01-02T01:00:00"
        "|01:00:00|1|COMPLETED"
    )
    jobs = 60_000
    sacct = write(
        tmp_path, "big.txt", [SACCT_HEADER, *(line.format(n=n) for n in range(jobs))]
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "TRACKER_INSTANCE_PATH": str(tmp_path / "instance"),
        "TRACKER_SQLALCHEMY_DATABASE_URI": url,
        "TRACKER_ALLOCATION_IMPORT_CHUNK_SIZE": "500",
    }
    command = [sys.executable, str(ROOT / "manage.py"), "allocation", "import-usage"]
    first = subprocess.Popen(
        [*command, sacct],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        with app.app_context():
            while not db.session.scalar(select(func.sum(BatchOperation.done))):
                assert first.poll() is None, "the import ended before it was killed"
                db.session.rollback()
                time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)  # the import and its reading child
    finally:
        first.wait()
    again = subprocess.run(
        [*command, sacct], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    with app.app_context():
        killed, finished = db.session.scalars(
            select(BatchOperation).order_by(BatchOperation.id)
        ).all()
        assert killed.status == finished.status == "finished"
        assert "its process stopped" in killed.error
        assert db.session.scalar(select(func.count(Job.id))) == jobs
        report = finished.output_data
        assert report["imported"] + report["already_present"] == jobs
        db.engine.dispose()


def test_every_problem_line_can_be_written_to_a_file(app, tmp_path):
    with app.app_context():
        build_kep_site()
    lines = [SACCT_HEADER, *(f"{n}|brecca|nobody" for n in range(250))]
    sacct = write(tmp_path, "bad.txt", lines)
    problems = tmp_path / "problems.csv"
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["allocation", "import-usage", sacct, "--problems", str(problems)]
    )
    assert result.exit_code == 1, result.output  # no line could be imported
    assert f"... and 230 more problems (all in {problems})" in result.output
    rows = problems.read_text(encoding="utf-8").splitlines()
    assert rows[0] == "line,problem"
    assert rows[1] == '2,"expected 10 fields, found 3"'
    assert len(rows) == 251 and rows[-1].startswith("251,")
    again = runner.invoke(
        args=["allocation", "import-usage", sacct, "--problems", str(problems)]
    )
    assert again.exit_code == 1 and "exists: give a new file" in again.output


def test_an_import_interrupted_inside_a_statement_is_closed_as_interrupted(app):
    """Ctrl-C lands while the database runs an INSERT: the connection is given
    up, the import's record still says what happened."""
    lines = eight_days_of_cpu()
    with app.app_context():
        build_kep_site()
        db.session.commit()
        settings = UsageImportSettings.from_config(app.config)

        def import_lines():
            return run_usage_import(
                db.session, SACCT, lines, settings, None, db.session.commit
            )

        def interrupt(_cursor, statement, *_args):
            # Inside the driver's call, as a signal would land: the jobs'
            # INSERT on SQLite, the first chunk's progress (after COPY) on
            # PostgreSQL.
            if statement.startswith("INSERT INTO allocation_jobs") or (
                statement.startswith("UPDATE batch_operations") and "done" in statement
            ):
                raise KeyboardInterrupt

        for name in ("do_execute", "do_executemany"):
            event.listen(db.engine, name, interrupt)
        try:
            with pytest.raises(KeyboardInterrupt):
                import_lines()
        finally:
            for name in ("do_execute", "do_executemany"):
                event.remove(db.engine, name, interrupt)
        operation = db.session.scalars(select(BatchOperation)).one()
        assert (operation.status, operation.error) == (
            "finished",
            "the import was interrupted",
        )
        assert db.session.scalar(select(func.count(Job.id))) == 0  # rolled back
        # The next import runs, and charges everything once.
        _operation, report = import_lines()
        assert report.imported == 8

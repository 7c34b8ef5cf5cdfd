"""``manage.py allocation ...``: import usage and print the ledger."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from allocation.changelog import set_actor
from allocation.importing import ImportReport
from allocation.ledger import LedgerFilter, ledger
from allocation.models import AllocationPeriod
from allocation.serialize import ledger_status
from allocation.usage_jobs import (
    DISK,
    SACCT,
    ImportRefused,
    UsageImportSettings,
    run_usage_import,
)
from tracker.extensions import db

group = AppGroup("allocation", help="Grants, allocation pools, usage and the ledger.")
SHOWN_PROBLEMS = 20


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def _run_import(kind: str, path: Path) -> None:
    """Import FILE of ``kind`` with a progress bar and print a summary line."""
    session = db.session
    set_actor(session, None, "manage.py")
    settings = UsageImportSettings.from_config(current_app.config)
    total = _count_lines(path)
    try:
        with (
            path.open(encoding="utf-8-sig", errors="strict", newline="") as handle,
            click.progressbar(
                length=total, label=f"Importing {path.name}", file=sys.stderr
            ) as bar,
        ):

            def advance(chunk: ImportReport) -> None:
                bar.update(chunk.lines)

            operation, report = run_usage_import(
                session,
                kind,
                handle,
                settings,
                started_by_id=None,
                commit=session.commit,
                total_lines=max(total - 1, 0),
                source=str(path),
                on_chunk=advance,
            )
    except ImportRefused as exc:
        raise click.ClickException(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{path}: not UTF-8 text ({exc.reason})") from None
    for line, message in report.problems[:SHOWN_PROBLEMS]:
        click.echo(f"{path.name}:{line}: {message}", err=True)
    if report.failed > SHOWN_PROBLEMS:
        click.echo(f"... and {report.failed - SHOWN_PROBLEMS} more problems", err=True)
    click.echo(f"{report.summary()} (batch operation #{operation.id}).")


FILE_ARGUMENT = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)


@group.command("import-usage")
@click.argument("file", type=FILE_ARGUMENT)
@with_appcontext
def import_usage(file: Path) -> None:
    """Import Slurm accounting from FILE (the output of sacct --parsable2)."""
    _run_import(SACCT, file)


@group.command("import-disk")
@click.argument("file", type=FILE_ARGUMENT)
@with_appcontext
def import_disk(file: Path) -> None:
    """Import disk-usage snapshots from FILE (Project|Machine|Bytes|Time lines)."""
    _run_import(DISK, file)


@group.command("ledger")
@click.option("--period", "period_name", help="Only this allocation period (by name).")
@with_appcontext
def show_ledger(period_name: str | None) -> None:
    """Print every allocation pool's balance."""
    which = LedgerFilter()
    if period_name is not None:
        period_id = db.session.scalar(
            select(AllocationPeriod.id).where(AllocationPeriod.name == period_name)
        )
        if period_id is None:
            raise click.BadParameter("no such allocation period", param_hint="--period")
        which = LedgerFilter(period_ids=[period_id])
    near = current_app.config["ALLOCATION_NEAR_PERCENT"]
    lines = ledger(db.session, which)
    if not lines:
        click.echo("No allocation pool.")
        return
    click.echo(
        f"{'period':<12} {'project':<24} {'pool':<16} {'allocated':>14} "
        f"{'used':>14} {'used %':>8}  status"
    )
    for line in lines:
        percent = "-" if line.used_percent is None else f"{line.used_percent:.1f}"
        click.echo(
            f"{line.period:<12} {line.project:<24} {line.resource_pool:<16} "
            f"{line.allocated:>14.2f} {line.used:>14.2f} {percent:>8}  "
            f"{ledger_status(line, near)}"
        )

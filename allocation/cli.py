"""``manage.py allocation ...``: import usage and print the ledger."""

from __future__ import annotations

import csv
import datetime as dt
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from allocation.accounts import account_maps, remove_account_map, set_account_map
from allocation.importing import ImportReport
from allocation.ledger import LedgerFilter, ledger
from allocation.limits import slurm_limits
from allocation.models import AllocationPeriod, Machine
from allocation.sacct import SacctOptions
from allocation.sacct_stream import ParserStopped
from allocation.serialize import ledger_status
from allocation.units import humanise
from allocation.usage_jobs import (
    DISK,
    SACCT,
    ImportRefused,
    UsageImportSettings,
    run_usage_import,
    sacct_options,
)
from tracker.devices import instance_to_link
from tracker.extensions import db
from tracker.fields import FieldError

group = AppGroup("allocation", help="Grants, allocation pools, usage and the ledger.")
SHOWN_PROBLEMS = 20


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def _run_import(
    kind: str,
    path: Path,
    options: SacctOptions | None = None,
    problems_path: Path | None = None,
) -> None:
    """Import FILE of ``kind`` with a progress bar and print a summary line;
    every problem line goes to ``problems_path`` as CSV if given."""
    session = db.session
    settings = UsageImportSettings.from_config(current_app.config)
    total = _count_lines(path)
    try:
        with (
            # A byte that is not UTF-8 makes its line a problem, not the file.
            path.open(encoding="utf-8-sig", errors="replace", newline="") as handle,
            _problems_file(problems_path) as problems,
            click.progressbar(
                length=total, label=f"Importing {path.name}", file=sys.stderr
            ) as bar,
        ):

            def advance(chunk: ImportReport) -> None:
                if problems is not None:
                    problems.writerows(chunk.problems)
                bar.update(chunk.lines)

            operation, report = run_usage_import(
                session,
                kind,
                handle,
                settings,
                started_by_id=None,
                commit=session.commit,
                # Less the header, unless printed with --noheader.
                total_lines=total if options and options.format else max(total - 1, 0),
                source=str(path),
                on_chunk=advance,
                sacct_options=options,
            )
    except (ImportRefused, ParserStopped) as exc:
        raise click.ClickException(str(exc)) from None
    for line, message in report.problems[:SHOWN_PROBLEMS]:
        click.echo(f"{path.name}:{line}: {message}", err=True)
    if report.failed > SHOWN_PROBLEMS:
        where = (
            f"all in {problems_path}" if problems_path else "--problems FILE lists all"
        )
        click.echo(
            f"... and {report.failed - SHOWN_PROBLEMS} more problems ({where})",
            err=True,
        )
    click.echo(f"{report.summary()} (batch operation #{operation.id}).")
    if report.failed:
        # For scripts: 3 if the rest went in, 1 if no line could be.
        stored = report.imported + report.already_present
        click.get_current_context().exit(EXIT_PARTIAL if stored else 1)


# The exit status of an import some of whose lines had problems.
EXIT_PARTIAL = 3
FILE_ARGUMENT = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)
PROBLEMS_OPTION = click.option(
    "--problems",
    "problems_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    metavar="FILE",
    help="Write every problem line to FILE as CSV (line,problem).",
)


@contextmanager
def _problems_file(path: Path | None) -> Iterator[Any]:
    """A CSV writer on ``path`` with its header written, or None."""
    if path is None:
        yield None
        return
    try:
        handle = path.open("x", encoding="utf-8", newline="")
    except FileExistsError:
        raise click.ClickException(f"{path} exists: give a new file") from None
    with handle:
        writer = csv.writer(handle)
        writer.writerow(["line", "problem"])
        yield writer


@group.command("import-usage")
@click.argument("file", type=FILE_ARGUMENT)
@click.option(
    "--format",
    "format_list",
    metavar="LIST",
    help="The --format list given to sacct, for output printed with --noheader.",
)
@click.option(
    "--delimiter", default="|", show_default=True, help="sacct's --delimiter."
)
@click.option(
    "--machine", metavar="NAME", help="The machine of a file with no Cluster column."
)
@PROBLEMS_OPTION
@with_appcontext
def import_usage(
    file: Path,
    format_list: str | None,
    delimiter: str,
    machine: str | None,
    problems_path: Path | None,
) -> None:
    """Import Slurm accounting from FILE (the output of sacct --parsable2)."""
    try:
        options = sacct_options(format_list, delimiter, machine)
    except FieldError as exc:
        raise click.BadParameter(exc.message, param_hint=f"--{exc.field}") from None
    _run_import(SACCT, file, options, problems_path)


@group.command("import-disk")
@click.argument("file", type=FILE_ARGUMENT)
@PROBLEMS_OPTION
@with_appcontext
def import_disk(file: Path, problems_path: Path | None) -> None:
    """Import disk-usage snapshots from FILE (Project|Machine|Bytes|Time lines)."""
    _run_import(DISK, file, problems_path=problems_path)


def period_named(name: str) -> AllocationPeriod:
    """Return the allocation period called ``name``, or stop with a usage error."""
    period = db.session.scalar(
        select(AllocationPeriod).where(AllocationPeriod.name == name)
    )
    if period is None:
        raise click.BadParameter(
            f"no allocation period named {name!r}", param_hint="PERIOD"
        )
    return period


@group.command("ledger")
@click.argument("period_argument", metavar="[PERIOD]", required=False)
@click.option("--period", "period_name", help="Only this allocation period (by name).")
@with_appcontext
def show_ledger(period_argument: str | None, period_name: str | None) -> None:
    """Print every allocation pool's balance, or only those of PERIOD."""
    if period_argument and period_name and period_argument != period_name:
        raise click.UsageError("give the period once: PERIOD or --period")
    period_name = period_name or period_argument
    which = LedgerFilter()
    if period_name is not None:
        which = LedgerFilter(period_ids=[period_named(period_name).id])
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
            f"{humanise(line.allocated, line.units):>14} "
            f"{humanise(line.used, line.units):>14} {percent:>8}  "
            f"{ledger_status(line, near)}"
        )


@group.command("map-account")
@click.argument("account")
@click.argument("project")
@with_appcontext
def map_account(account: str, project: str) -> None:
    """Charge Slurm ACCOUNT's usage to PROJECT (by name), whatever their names."""
    try:
        mapping = set_account_map(db.session, account, project)
    except FieldError as exc:
        raise click.BadParameter(exc.message, param_hint=exc.field.upper()) from None
    db.session.commit()
    click.echo(f"Account {mapping.account!r} is charged to project {project!r}.")


@group.command("unmap-account")
@click.argument("account")
@with_appcontext
def unmap_account(account: str) -> None:
    """Stop mapping Slurm ACCOUNT: it matches a project of its own name again."""
    if not remove_account_map(db.session, account):
        raise click.BadParameter(f"{account!r} is not mapped", param_hint="ACCOUNT")
    db.session.commit()
    click.echo(f"Account {account.lower()!r} is no longer mapped.")


@group.command("accounts")
@with_appcontext
def list_accounts() -> None:
    """List the Slurm accounts mapped to projects."""
    rows = account_maps(db.session)
    if not rows:
        click.echo("No account is mapped; accounts match project names.")
    for account, project in rows:
        click.echo(f"{account:<32} -> {project}")


def current_or_named_period(name: str | None) -> AllocationPeriod:
    """Return the period called ``name``, or the one containing today."""
    if name is not None:
        return period_named(name)
    today = dt.datetime.now(ZoneInfo(current_app.config["ALLOCATION_TIMEZONE"])).date()
    period = db.session.scalar(
        select(AllocationPeriod)
        .where(AllocationPeriod.start <= today, AllocationPeriod.end > today)
        .order_by(AllocationPeriod.start.desc())
        .limit(1)
    )
    if period is None:
        raise click.UsageError("no allocation period contains today: give --period")
    return period


@group.command("slurm-limits")
@click.option("--period", "period_name", help="The allocation period (by name).")
@with_appcontext
def print_slurm_limits(period_name: str | None) -> None:
    """Print the sacctmgr commands that set each project account's GrpTRESMins to
    its remaining allocation (a dry run: nothing is sent to Slurm)."""
    period = current_or_named_period(period_name)
    limits = slurm_limits(db.session, period)
    click.echo(f"# GrpTRESMins from the remaining allocations of {period.name}")
    if not limits:
        click.echo("# no CPU-hours allocation pool in this period")
    for limit in limits:
        click.echo(f"{limit.command()}  # {limit.project}, {limit.resource_pool}")


@group.command("link-machine")
@click.argument("machine")
@click.argument("instance_uuid", required=False)
@click.option("--unlink", is_flag=True, help="Undo the link.")
@with_appcontext
def link_machine(machine: str, instance_uuid: str | None, unlink: bool) -> None:
    """Link MACHINE to the registry's instance INSTANCE_UUID: one device, one
    identity, shown on the instance's page."""
    instance_id = instance_to_link(db.session, instance_uuid, unlink)
    record = db.session.scalar(select(Machine).where(Machine.name == machine))
    if record is None:
        raise click.BadParameter("no machine of this name", param_hint="MACHINE")
    record.instance_id = instance_id
    db.session.commit()
    click.echo(f"Linked {machine}." if instance_id else f"Unlinked {machine}.")

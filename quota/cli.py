"""``manage.py quota ...``: create quotas, add clients, pull, approve overrides."""

from __future__ import annotations

from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from quota.controller import HttpTransport, committed_total
from quota.models import ControllerQuota, QuotaClient
from quota.overrides import OverrideRefused, approve
from quota.pulls import run_pull
from tracker.db_types import utcnow
from tracker.extensions import db
from tracker.fields import FieldError, url_value

cli = AppGroup("quota", help="Quotas split among offline field clients.")


def quota_named(kind: str) -> ControllerQuota:
    quota = db.session.scalar(
        select(ControllerQuota).where(ControllerQuota.record_kind == kind)
    )
    if quota is None:
        raise click.BadParameter(f"no quota for {kind!r}", param_hint="KIND")
    return quota


@cli.command("create")
@click.argument("kind")
@click.argument("target", type=click.IntRange(1))
@click.option(
    "--days",
    type=click.IntRange(1),
    default=365,
    show_default=True,
    help="How long the window stays open, from now.",
)
def create(kind: str, target: int, days: int) -> None:
    """Create a quota of TARGET records of KIND."""
    if db.session.scalar(
        select(ControllerQuota.id).where(ControllerQuota.record_kind == kind)
    ):
        raise click.ClickException(f"a quota for {kind!r} already exists")
    now = utcnow()
    db.session.add(
        ControllerQuota(
            record_kind=kind,
            target=target,
            window_start=now,
            window_expires=now + timedelta(days=days),
        )
    )
    db.session.commit()
    click.echo(f"Created the quota of {target} {kind} records for {days} days.")


@cli.command("add-client")
@click.argument("kind")
@click.argument("name")
@click.argument("endpoint")
@click.argument("secret")
def add_client(kind: str, name: str, endpoint: str, secret: str) -> None:
    """Add field client NAME, reachable at ENDPOINT with SECRET, to KIND's quota."""
    quota = quota_named(kind)
    try:
        endpoint = url_value(endpoint, "endpoint")
    except FieldError as exc:
        raise click.BadParameter(str(exc), param_hint="ENDPOINT") from None
    if any(c.name == name for c in quota.clients):
        raise click.ClickException(f"client {name!r} is already in this quota")
    quota.clients.append(QuotaClient(name=name, endpoint=endpoint, secret=secret))
    db.session.commit()
    click.echo(f"Added {name} to the {kind} quota.")


@cli.command("pull")
@click.argument("kind", required=False)
def pull(kind: str | None) -> None:
    """Pull counts and move ceilings for KIND's quota (or every active one)."""
    quotas = (
        [quota_named(kind)]
        if kind
        else db.session.scalars(
            select(ControllerQuota).where(ControllerQuota.active.is_(True))
        ).all()
    )
    transport = HttpTransport(current_app.config["QUOTA_CLIENT_TIMEOUT"])
    for quota in quotas:
        operation_id, summary = run_pull(
            db.session, quota, transport, db.session.commit
        )
        if summary is None:
            click.echo(
                f"{quota.record_kind}: not pulled (batch operation #{operation_id})."
            )
            continue
        click.echo(
            f"{quota.record_kind}: {summary.reached} reached, {summary.unreachable} "
            f"unreachable, {summary.changed} ceilings changed; "
            f"{committed_total(db.session, quota)} of {quota.target} assigned "
            f"(batch operation #{operation_id})."
        )


@cli.command("approve")
@click.argument("kind")
@click.argument("request_code")
@click.argument("extra", type=click.IntRange(1))
def approve_override(kind: str, request_code: str, extra: int) -> None:
    """Approve EXTRA more records for the client that showed REQUEST_CODE."""
    quota = quota_named(kind)
    hours = current_app.config["QUOTA_OVERRIDE_HOURS"]
    try:
        code = approve(
            db.session, quota, request_code, extra, utcnow(), timedelta(hours=hours)
        )
    except OverrideRefused as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo(code)

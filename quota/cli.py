"""``manage.py quota ...``: create and administer quotas, pull, approve overrides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
from flask import current_app
from flask.cli import AppGroup

from quota.admin import (
    UNSET,
    AdminRefused,
    add_client,
    client_named,
    create_quota,
    quota_for,
    remove_client,
    update_client,
    update_quota,
)
from quota.controller import HttpTransport, Policy, committed_total
from quota.models import ControllerQuota, QuotaClient
from quota.overrides import OverrideRefused, approve_request
from quota.pulls import run_pull
from tracker.db_types import utcnow
from tracker.devices import instance_to_link
from tracker.extensions import db
from tracker.fields import FieldError, url_value

cli = AppGroup("quota", help="Quotas split among offline field clients.")
ACTOR = "manage.py"


def quota_named(kind: str) -> ControllerQuota:
    quota = quota_for(db.session, kind)
    if quota is None:
        raise click.BadParameter(f"no quota for {kind!r}", param_hint="KIND")
    return quota


def client_of(quota: ControllerQuota, name: str) -> QuotaClient:
    client = client_named(quota, name)
    if client is None:
        raise click.BadParameter(
            f"no client {name!r} in the {quota.record_kind} quota", param_hint="CLIENT"
        )
    return client


class Moment(click.ParamType):
    """A date (2027-01-31) or date and time (2027-01-31T12:00), UTC unless given."""

    name = "DATE"

    def convert(self, value, param, ctx):
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            self.fail("a date such as 2027-01-31 or 2027-01-31T12:00", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _commit_or_fail(action) -> object:
    try:
        result = action()
    except AdminRefused as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    return result


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
    now = utcnow()
    _commit_or_fail(
        lambda: create_quota(
            db.session, kind, target, now, now + timedelta(days=days), ACTOR
        )
    )
    click.echo(f"Created the quota of {target} {kind} records for {days} days.")


@cli.command("update")
@click.argument("kind")
@click.option("--target", type=click.IntRange(1), help="The new overall target.")
@click.option("--start", type=Moment(), help="When the window opens.")
@click.option("--expires", type=Moment(), help="When the window closes.")
@click.option("--active/--inactive", default=None, help="Pull the quota or not.")
def update(kind, target, start, expires, active) -> None:
    """Change KIND's target or window; a target below what is committed is refused."""
    quota = quota_named(kind)
    changes = _commit_or_fail(
        lambda: update_quota(
            db.session, quota, target, start, expires, active, actor=ACTOR
        )
    )
    click.echo(f"{kind}: " + ("; ".join(changes) if changes else "nothing changed."))


@cli.command("add-client")
@click.argument("kind")
@click.argument("name")
@click.argument("endpoint")
@click.argument("secret")
def add_client_command(kind: str, name: str, endpoint: str, secret: str) -> None:
    """Add field client NAME, reachable at ENDPOINT with SECRET, to KIND's quota."""
    quota = quota_named(kind)
    try:
        endpoint = url_value(endpoint, "endpoint")
    except FieldError as exc:
        raise click.BadParameter(str(exc), param_hint="ENDPOINT") from None
    _commit_or_fail(
        lambda: add_client(db.session, quota, name, endpoint, secret, ACTOR)
    )
    click.echo(f"Added {name} to the {kind} quota.")


@cli.command("client")
@click.argument("kind")
@click.argument("client_name", metavar="CLIENT")
@click.option("--weight", type=click.FloatRange(0, 1000), help="Share of headroom.")
@click.option("--max", "maximum", type=click.IntRange(0), help="Highest ceiling.")
@click.option("--no-max", is_flag=True, help="Remove the highest ceiling.")
@click.option("--active/--inactive", default=None, help="Give it headroom or not.")
def client_command(kind, client_name, weight, maximum, no_max, active) -> None:
    """Change CLIENT's weight, maximum or state in KIND's quota."""
    quota = quota_named(kind)
    client = client_of(quota, client_name)
    if no_max and maximum is not None:
        raise click.UsageError("give --max or --no-max, not both")
    max_ceiling = None if no_max else UNSET if maximum is None else maximum
    changes = _commit_or_fail(
        lambda: update_client(
            db.session, quota, client, weight, max_ceiling, active, ACTOR
        )
    )
    click.echo(
        f"{client_name}: " + ("; ".join(changes) if changes else "nothing changed.")
    )


@cli.command("remove-client")
@click.argument("kind")
@click.argument("client_name", metavar="CLIENT")
def remove_client_command(kind: str, client_name: str) -> None:
    """Remove CLIENT from KIND's quota; what it may still create stays counted."""
    quota = quota_named(kind)
    client = client_of(quota, client_name)
    held = _commit_or_fail(lambda: remove_client(db.session, quota, client, ACTOR))
    click.echo(
        f"Removed {client_name}; its {held} records stay counted against the target."
    )


@cli.command("pull")
@click.argument("kind", required=False)
def pull(kind: str | None) -> None:
    """Pull counts and move ceilings for KIND's quota (or every active one)."""
    from sqlalchemy import select

    quotas = (
        [quota_named(kind)]
        if kind
        else db.session.scalars(
            select(ControllerQuota).where(ControllerQuota.active.is_(True))
        ).all()
    )
    policy = Policy.from_config(current_app.config)
    with HttpTransport.from_config(current_app.config) as transport:
        for quota in quotas:
            operation_id, summary = run_pull(
                db.session, quota, transport, db.session.commit, policy=policy
            )
            if summary is None:
                click.echo(
                    f"{quota.record_kind}: not pulled"
                    f" (batch operation #{operation_id})."
                )
                continue
            click.echo(
                f"{quota.record_kind}: {summary.reached} reached,"
                f" {summary.unreachable} unreachable, {summary.changed} ceilings"
                f" changed; {committed_total(db.session, quota)} of {quota.target}"
                f" assigned (batch operation #{operation_id})."
            )


@cli.command("approve")
@click.argument("kind")
@click.argument("request_code")
@click.argument("extra", type=click.IntRange(1))
@click.option(
    "--reclaim",
    is_flag=True,
    help="If too few records are free, first ask idle clients to lower theirs.",
)
def approve_override(kind: str, request_code: str, extra: int, reclaim: bool) -> None:
    """Approve EXTRA more records for the client that showed REQUEST_CODE."""
    quota = quota_named(kind)
    try:
        approved = approve_request(
            db.session,
            quota,
            request_code,
            extra,
            current_app.config,
            db.session.commit,
            actor=ACTOR,
            reclaim=reclaim,
        )
    except OverrideRefused as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    if approved.warning:
        click.echo(f"Warning: {approved.warning}.", err=True)
    click.echo(approved.code)


@cli.command("link")
@click.argument("kind")
@click.argument("client_name", metavar="CLIENT")
@click.argument("instance_uuid", required=False)
@click.option("--unlink", is_flag=True, help="Undo the link.")
def link_command(kind, client_name, instance_uuid, unlink) -> None:
    """Link CLIENT of KIND's quota to the registry's instance INSTANCE_UUID: one
    device, one identity, and its answers count as the instance's contact."""
    instance_id = instance_to_link(db.session, instance_uuid, unlink)
    client = client_of(quota_named(kind), client_name)
    client.instance_id = instance_id
    db.session.commit()
    click.echo(f"Linked {client_name}." if instance_id else f"Unlinked {client_name}.")

"""``manage.py crawl`` (crawl now, in this process, with a progress bar) and
``manage.py inventory`` (the fleet as an Ansible dynamic inventory)."""

from __future__ import annotations

import json
import sys

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from tracker.batch import operations
from tracker.batch.models import BatchOperation
from tracker.db_types import utcnow
from tracker.extensions import db
from tracker.instances.crawlability import crawl_refusal
from tracker.instances.crawling import SCOPE_ALL, crawlable_ids, instance_scope
from tracker.instances.discovery import ansible_inventory
from tracker.instances.launch import launch_crawl
from tracker.instances.models import Instance
from tracker.instances.tasks import NOTICE_KEY, crawl_now


@click.command("crawl")
@click.argument("uuid", required=False)
@with_appcontext
def crawl(uuid: str | None) -> None:
    """Crawl every enabled instance now, or only the one with UUID."""
    require_approval = current_app.config["CRAWL_REQUIRE_APPROVAL"]
    scope, wanted = SCOPE_ALL, None
    if uuid is not None:
        instance = db.session.scalar(select(Instance).where(Instance.uuid == uuid))
        if instance is None:
            raise click.BadParameter("no instance with this uuid", param_hint="UUID")
        if crawl_refusal(instance, require_approval) is not None:
            raise click.ClickException("this instance is disabled or awaits approval")
        scope, wanted = instance_scope(instance.id), [instance.id]
    total = len(crawlable_ids(db.session, require_approval, wanted))
    with click.progressbar(length=total, label="Crawling", file=sys.stderr) as bar:
        try:
            operation = launch_crawl(
                scope,
                wanted,
                run=lambda operation_id: crawl_now(
                    operation_id, lambda c: bar.update(c.up + c.down + c.skipped)
                ),
            )
        except operations.AlreadyActive as exc:
            existing = exc.existing.id if exc.existing else "?"
            raise click.ClickException(f"crawl #{existing} is still running") from None
    run = db.session.get(BatchOperation, operation.id, populate_existing=True)
    click.echo(
        f"Crawled {run.total} instances: {run.done} up, {run.failed} down, "
        f"{run.skipped} skipped (batch operation #{run.id})."
    )
    notice = (run.output_data or {}).get(NOTICE_KEY)
    if notice:
        click.echo(f"Note: {notice}")


@click.command("inventory")
@click.option("--list", "list_all", is_flag=True, help="Print the whole inventory.")
@click.option("--host", help="Print one host's variables (all are in --list).")
@with_appcontext
def inventory(list_all: bool, host: str | None) -> None:
    """An Ansible dynamic inventory of the tracked instances, as JSON."""
    if not list_all and host is None:
        raise click.UsageError("give --list or --host HOST")
    whole = ansible_inventory(db.session, current_app.config, utcnow())
    if list_all:
        click.echo(json.dumps(whole, indent=2, sort_keys=True))
    else:
        click.echo(json.dumps(whole["_meta"]["hostvars"].get(host, {}), indent=2))

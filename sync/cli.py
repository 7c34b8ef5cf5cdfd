"""``manage.py sync ...``: register producers, import carried files, see status."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from sync.conflicts import open_conflict_total
from sync.deliveries import (
    AlreadyImported,
    DeliverySettings,
    apply_all,
    held_warning,
    import_file,
)
from sync.models import SyncProducer
from sync.producers import (
    ProducerRefused,
    all_producer_summaries,
    link_producer,
    producer_named,
    register_producer,
    reprovision_producer,
)
from sync.reapplying import reapply
from sync.verifying import UnknownProducer
from sync.wire.bundles import BundleError
from tracker.devices import instance_to_link
from tracker.extensions import db

group = AppGroup("sync", help="Records sent by field devices: producers and files.")
FILE_ARGUMENT = click.Path(exists=True, readable=True, path_type=Path)
BUNDLE_FILES = "*.jsonl.gz"


def bundle_files(paths: tuple[Path, ...]) -> list[Path]:
    """The files named, and in each directory named its bundle files by name
    (a middleman's export names them by producer and sequences)."""
    found: list[Path] = []
    for path in paths:
        found.extend(sorted(path.glob(BUNDLE_FILES)) if path.is_dir() else [path])
    return found


@group.command("add-producer")
@click.argument("producer_id")
@click.option("--description", default="", help="Who or where the device is.")
@click.option(
    "--public-key",
    default=None,
    help="The device's own Ed25519 public key; without it, a credential is made.",
)
@click.option("--encrypt", is_flag=True, help="Give the device an encryption key.")
@with_appcontext
def add_producer(
    producer_id: str, description: str, public_key: str | None, encrypt: bool
) -> None:
    """Register PRODUCER_ID and print what to configure on the device."""
    try:
        _, credential, key = register_producer(
            db.session, producer_id, description, public_key, encrypt
        )
    except ProducerRefused as exc:
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo(f"Registered producer {producer_id}.")
    if credential:
        click.echo(f"credential: {credential}")
    if key:
        click.echo(f"encryption key: {key}")
    if credential or key:
        click.echo("Configure these on the device; they are not shown again.")


@group.command("reprovision")
@click.argument("producer_id")
@click.option(
    "--public-key",
    default=None,
    help="The device's own new Ed25519 public key; without it, a credential is made.",
)
@click.option(
    "--void-old-key",
    is_flag=True,
    help="Refuse the old credential at once, even for files signed before"
    " (a lost or stolen device).",
)
@with_appcontext
def reprovision(producer_id: str, public_key: str | None, void_old_key: bool) -> None:
    """Give PRODUCER_ID (a reinstalled or replaced device) a new credential and
    enable it; its history stays. The old credential is retired: it still signs
    files the device made before, until the device first speaks with the new
    one (void at once with --void-old-key, or if the producer was disabled)."""
    try:
        producer, credential = reprovision_producer(
            db.session, producer_id, public_key, void_old_key
        )
    except ProducerRefused as exc:
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    old = (
        "the old one is retired: files the device signed with it before are"
        " still taken, up to where the device continues with the new one"
        if producer.retired_keys
        else "the old one is refused from now on"
    )
    click.echo(
        f"New credential for {producer_id} (enabled); {old}."
        f" The server holds its sequences through {producer.highest_received}:"
        " import the device's files not yet carried, then on the device run"
        " flask sync configure, then flask sync recover URL to continue after them."
    )
    if credential:
        click.echo(f"credential: {credential}")
        click.echo("Configure it on the device; it is not shown again.")


def _set_active(producer_id: str, active: bool) -> None:
    producer = db.session.scalar(
        select(SyncProducer).filter_by(producer_id=producer_id)
    )
    if producer is None:
        raise click.ClickException(f"no producer {producer_id!r}")
    producer.active = active
    db.session.commit()
    if active:
        click.echo(f"{producer_id} is enabled: its pushes and files are taken.")
    else:
        click.echo(f"{producer_id} is disabled: its pushes and files are refused.")


@group.command("revoke")
@click.argument("producer_id")
@with_appcontext
def revoke(producer_id: str) -> None:
    """Refuse PRODUCER_ID's pushes and files from now on (a lost device; the
    same as disable; sync reprovision gives it a new credential and enables it)."""
    _set_active(producer_id, False)


@group.command("disable")
@click.argument("producer_id")
@with_appcontext
def disable(producer_id: str) -> None:
    """Refuse PRODUCER_ID's pushes and files (the page's Disable)."""
    _set_active(producer_id, False)


@group.command("enable")
@click.argument("producer_id")
@with_appcontext
def enable(producer_id: str) -> None:
    """Take PRODUCER_ID's pushes and files again (the page's Enable)."""
    _set_active(producer_id, True)


@group.command("import")
@click.argument("files", nargs=-1, required=True, type=FILE_ARGUMENT)
@with_appcontext
def import_files(files: tuple[Path, ...]) -> None:
    """Import carried bundle FILES, or every *.jsonl.gz of a directory (in any
    order; gaps wait for the rest)."""
    settings = DeliverySettings.from_config(current_app.config)
    failures = 0
    files = tuple(bundle_files(files))
    if not files:
        raise click.ClickException(f"no {BUNDLE_FILES} file to import there")
    for path in files:
        try:
            reply = import_file(
                db.session,
                path,
                settings,
                db.session.commit,
                current_app.config["SYNC_MAX_FILE_BYTES"],
            )
        except AlreadyImported as exc:
            click.echo(f"{path}: {exc}")
            continue
        except (BundleError, UnknownProducer, OSError) as exc:
            failures += 1
            click.echo(f"{path}: refused: {exc}", err=True)
            continue
        click.echo(f"{path}: {_describe(reply)}")
    if failures:
        raise click.ClickException(f"{failures} of {len(files)} files were refused")


def _describe(reply: dict) -> str:
    text = (
        f"producer {reply['producer']}, transactions {reply['first_sequence']}"
        f"-{reply['acknowledged_through']}: {reply['new']} new,"
        f" {reply['duplicates']} already received, {reply['applied']} applied"
    )
    for label in ("quarantined", "held", "rejected"):
        if reply[label]:
            text += f", {len(reply[label])} {label}"
    if reply["parked"]:
        text += f", {reply['parked']} parked"
    if reply["missing"]:
        ranges = ", ".join(f"{a}-{b}" for a, b in reply["missing"])
        text += f"; waiting for {ranges}"
    text += f" (batch operation #{reply['operation']})"
    for warning in reply["warnings"]:
        text += f"\n  warning: {warning}"
    return text


@group.command("apply")
@with_appcontext
def apply_now() -> None:
    """Apply whatever is waiting now and retry parked transactions."""
    totals = apply_all(
        db.session, DeliverySettings.from_config(current_app.config), db.session.commit
    )
    if totals is None:
        click.echo("Nothing to apply.")
    else:
        click.echo(
            f"Applied {totals.applied + totals.unparked}, parked {totals.parked},"
            f" quarantined {totals.quarantined}."
        )


@group.command("reapply")
@click.option("--producer", "producer_id", help="Only this producer's.")
@click.option("--model", help="Only this model's transactions.")
@click.option("--held-only", is_flag=True, help="Leave quarantined transactions alone.")
@with_appcontext
def reapply_command(producer_id: str | None, model: str | None, held_only: bool):
    """Re-apply held and quarantined transactions whose cause is fixed (a model
    now on SYNC_MODELS, a payload that can now be opened)."""
    allowed = current_app.config["SYNC_MODELS"]
    if producer_id is not None and producer_named(db.session, producer_id) is None:
        raise click.ClickException(f"no producer {producer_id!r}")
    totals = reapply(
        db.session, allowed, db.session.commit, producer_id, model, not held_only
    )
    click.echo(
        f"Re-applied {totals.released}: {totals.applied} applied,"
        f" {totals.parked} parked; still held {totals.still_held},"
        f" still quarantined {totals.still_quarantined}."
    )
    if totals.still_held:
        click.echo(f"warning: {held_warning(totals.still_held, allowed)}", err=True)


@group.command("status")
@with_appcontext
def status() -> None:
    """Print each producer's cursors, lag and problems."""
    allowed = current_app.config["SYNC_MODELS"]
    if not allowed:
        click.echo(
            "warning: SYNC_MODELS is empty: every transaction is held, none"
            " applied; list the models in settings.cfg",
            err=True,
        )
    rows = all_producer_summaries(db.session)
    if not rows:
        click.echo("No producers registered.")
        return
    click.echo(
        f"{'producer':<24} {'active':<6} {'received':>9} {'applied':>9} {'lag':>7}"
        f" {'parked':>7}"
        f" {'quar.':>6} {'held':>6} {'rej.':>5} {'confl.':>6}  last contact"
    )
    held = 0
    for row in rows:
        contact = row["last_contact"]
        held += row["held"]
        click.echo(
            f"{row['producer_id']:<24} {'yes' if row['active'] else 'no':<6}"
            f" {row['received_through']:>9}"
            f" {row['applied']:>9} {row['lag']:>7} {row['parked']:>7}"
            f" {row['quarantined']:>6} {row['held']:>6} {row['rejected']:>5}"
            f" {row['conflicts']:>6}"
            f"  {contact.isoformat() if contact else 'never'}"
        )
        for first, last in row["missing"]:
            click.echo(f"  missing {first}-{last}")
    if held:
        click.echo(f"warning: {held_warning(held, allowed)}", err=True)
    conflicts = open_conflict_total(db.session)
    if conflicts:
        click.echo(
            f"warning: {conflicts} open conflicts (a field two producers changed"
            " concurrently): resolve them on the Sync page's Conflicts",
            err=True,
        )


@group.command("link")
@click.argument("producer_id")
@click.argument("instance_uuid", required=False)
@click.option("--unlink", is_flag=True, help="Undo the link.")
@with_appcontext
def link(producer_id: str, instance_uuid: str | None, unlink: bool) -> None:
    """Link PRODUCER_ID to the registry's instance INSTANCE_UUID: one device,
    one identity, and its deliveries count as the instance's contact."""
    instance_id = instance_to_link(db.session, instance_uuid, unlink)
    try:
        link_producer(db.session, producer_id, instance_id)
    except ProducerRefused as exc:
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo(f"Linked {producer_id}." if instance_id else f"Unlinked {producer_id}.")

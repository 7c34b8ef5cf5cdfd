"""Commands a field application or middleman adds to its ``flask`` CLI::

app.cli.add_command(client_cli(db, OutgoingTransaction, ProducerState))
app.cli.add_command(relay_cli(db, RelayedBundle))
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from sync.client.models import SyncConfigurationError
from sync.client.operations import configure_producer
from sync.client.relay import (
    ExportStopped,
    RelayRefused,
    export_bundles,
    fetch_producer_keys,
    forward,
    import_relay_file,
    relay_status,
    set_aside,
    store_producer_keys,
)
from sync.client.transfer import (
    PushSummary,
    Retry,
    TransferError,
    export_all,
    push,
    push_url,
    recover,
)
from sync.wire.bundles import MAX_FILE_TRANSACTIONS, BundleError

ATTEMPTS = click.IntRange(1, 1000)


def client_cli(db: Any, outgoing_model: type, state_model: type) -> AppGroup:
    """``flask sync configure | push | export | status`` for a field client."""
    group = AppGroup("sync", help="Send this device's changes to the server.")

    @group.command("configure")
    @click.argument("producer_id")
    @click.option("--credential", help="The credential the server issued.")
    @click.option("--encryption-key", help="The key to seal payloads with.")
    def configure(producer_id: str, credential: str | None, encryption_key: str | None):
        """Name this device PRODUCER_ID and install its credential."""
        try:
            configure_producer(
                db.session, state_model, producer_id, encryption_key, credential
            )
        except SyncConfigurationError as exc:
            raise click.ClickException(str(exc)) from None
        db.session.commit()
        click.echo(f"This device sends as {producer_id}.")

    @group.command("push")
    @click.argument("url")
    @click.option("--batch-size", type=click.IntRange(1, 10000), default=500)
    @click.option("--attempts", type=ATTEMPTS, default=6, help="Tries per bundle.")
    def push_command(url: str, batch_size: int, attempts: int):
        """Push unsent changes to the server or middleman at URL."""

        def report(summary: PushSummary) -> None:
            click.echo(f"sent {summary.sent} in {summary.bundles} bundles", err=True)

        try:
            summary = push(
                db.session,
                outgoing_model,
                state_model,
                push_url(url),
                batch_size=batch_size,
                retry=Retry(attempts=attempts),
                on_bundle=report,
            )
        except (TransferError, SyncConfigurationError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(
            f"Pushed {summary.sent} transactions in {summary.bundles} bundles"
            f" ({summary.duplicates} were already there)."
        )
        for line in summary.totals.held_lines():
            click.echo(line, err=True)
        for warning in summary.totals.warnings:
            click.echo(f"warning: {warning}", err=True)
        for item in summary.rejected:
            click.echo(f"rejected: {item.get('reason')}", err=True)
        if summary.rejected:
            sys.exit(1)

    @group.command("recover")
    @click.argument("url")
    def recover_command(url: str):
        """Continue after the highest sequence the server at URL holds for this
        device (after a reinstall or a wiped database)."""
        try:
            recovered = recover(db.session, state_model, outgoing_model, url)
        except (TransferError, SyncConfigurationError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(
            f"The server holds sequences through {recovered.highest_received};"
            f" this device continues at {recovered.next_sequence}."
        )
        if recovered.delivered:
            click.echo(
                f"{recovered.delivered} unsent transactions here had reached the"
                " server already: marked sent."
            )
        if recovered.renumbered:
            click.echo(
                f"{recovered.renumbered} unsent transactions made here before"
                " recovering were renumbered after the server's (their numbers"
                " held other changes there): push to send them."
            )

    @group.command("export")
    @click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--from-sequence", type=click.IntRange(1), default=None)
    @click.option(
        "--per-file",
        # A server takes files of at most MAX_FILE_TRANSACTIONS.
        type=click.IntRange(1, MAX_FILE_TRANSACTIONS),
        default=MAX_FILE_TRANSACTIONS,
        help="The most transactions in one file (at most 100000, what a server"
        " takes); more go to PATH-2, PATH-3...",
    )
    @click.option(
        "--max-files", type=click.IntRange(1), default=None, help="Stop after N files."
    )
    def export_command(
        path: Path, from_sequence: int | None, per_file: int, max_files: int | None
    ):
        """Write every change not yet exported to PATH (and PATH-2, PATH-3... past
        --per-file), to carry to the server; say what remains."""
        try:
            written, remaining = export_all(
                db.session,
                outgoing_model,
                state_model,
                path,
                from_sequence,
                per_file,
                max_files,
            )
        except (SyncConfigurationError, OSError) as exc:
            raise click.ClickException(str(exc)) from None
        if not written:
            click.echo("Nothing new to export.")
        for summary in written:
            click.echo(
                f"Wrote {summary.count} transactions ({summary.first_sequence}"
                f"-{summary.last_sequence}) to {summary.path}."
            )
        if remaining:
            click.echo(
                f"{remaining} transactions remain unexported: run flask sync"
                " export again to write them.",
                err=True,
            )
            sys.exit(1)

    @group.command("status")
    def status():
        """Print how many changes wait to be sent."""
        unsent = db.session.scalar(
            select(func.count()).where(outgoing_model.sent.is_(False))
        )
        total = db.session.scalar(select(func.count()).select_from(outgoing_model))
        click.echo(f"{unsent} of {total} transactions not yet acknowledged.")

    return group


def relay_cli(db: Any, relayed_model: type) -> AppGroup:
    """``flask relay keys | forward | import | export | status | drop | retry``
    for a middleman."""
    group = AppGroup("relay", help="Forward field clients' bundles to the server.")

    @group.command("forward")
    @click.argument("url")
    @click.option("--attempts", type=ATTEMPTS, default=6, help="Tries per bundle.")
    def forward_command(url: str, attempts: int):
        """Forward kept bundles to the server at URL."""
        try:
            summary = forward(
                db.session, relayed_model, push_url(url), retry=Retry(attempts)
            )
        except TransferError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(
            f"Forwarded {summary.transactions} transactions in"
            f" {summary.bundles} bundles."
        )
        for line in summary.totals.held_lines():
            click.echo(line, err=True)
        for warning in summary.totals.warnings:
            click.echo(f"warning: {warning}", err=True)
        for refusal in summary.refused:
            click.echo(f"refused by the server, set aside: {refusal}", err=True)
        if summary.refused:
            click.echo(
                "flask relay status lists them; drop or retry them by number",
                err=True,
            )
            sys.exit(1)

    @group.command("keys")
    @click.argument("url")
    @click.option(
        "--token",
        envvar="SYNC_RELAY_TOKEN",
        required=True,
        help="A Bearer token of the server (or SYNC_RELAY_TOKEN).",
    )
    def keys_command(url: str, token: str):
        """Fetch the producers' public keys from the server at URL: only bundles
        they signed are taken."""
        try:
            items = fetch_producer_keys(url, token)
        except TransferError as exc:
            raise click.ClickException(str(exc)) from None
        count = store_producer_keys(db.session, relayed_model, items)
        db.session.commit()
        click.echo(f"{count} producers may push here.")

    @group.command("export")
    @click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
    def export_command(directory: Path):
        """Write every bundle waiting to be forwarded as a file in DIRECTORY,
        to carry to the server (manage.py sync import DIRECTORY); say what
        remains if the writing stops."""
        stopped = None
        try:
            written = export_bundles(db.session, relayed_model, directory)
        except ExportStopped as exc:
            written, stopped = exc.written, exc.error
        for item in written:
            click.echo(
                f"{item.path}: {item.producer}"
                f" {item.first_sequence}-{item.last_sequence}"
            )
        click.echo(f"Wrote {len(written)} bundle files.")
        if stopped is not None:
            waiting = relay_status(db.session, relayed_model)["waiting"]
            raise click.ClickException(
                f"the export stopped: {stopped}; {waiting} bundles remain waiting"
                " (run flask relay export again once it is fixed)"
            )

    @group.command("drop")
    @click.argument("bundle_id", type=click.IntRange(1))
    def drop_command(bundle_id: int):
        """Drop the refused bundle BUNDLE_ID (a forged one, say)."""
        refusal = set_aside(db.session, relayed_model, bundle_id, drop=True)
        if refusal:
            raise click.ClickException(refusal)
        db.session.commit()
        click.echo(f"Dropped bundle #{bundle_id}.")

    @group.command("retry")
    @click.argument("bundle_id", type=click.IntRange(1))
    def retry_command(bundle_id: int):
        """Put the refused bundle BUNDLE_ID back in line for forwarding."""
        refusal = set_aside(db.session, relayed_model, bundle_id, drop=False)
        if refusal:
            raise click.ClickException(refusal)
        db.session.commit()
        click.echo(f"Bundle #{bundle_id} will be forwarded again.")

    @group.command("import")
    @click.argument(
        "files",
        nargs=-1,
        required=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
    )
    def import_command(files: tuple[Path, ...]):
        """Keep carried bundle FILES for forwarding."""
        refused = 0
        for path in files:
            try:
                bundle, kept = import_relay_file(db.session, relayed_model, path)
            except (BundleError, RelayRefused, OSError) as exc:
                db.session.rollback()
                refused += 1
                click.echo(f"{path}: refused: {exc}", err=True)
                continue
            db.session.commit()
            state = "kept" if kept else "already kept"
            click.echo(
                f"{path}: {state}: {bundle.producer}"
                f" {bundle.first_sequence}-{bundle.last_sequence}"
            )
        if refused:
            raise click.ClickException(f"{refused} of {len(files)} files refused")

    @group.command("status")
    def status():
        """Print the bundles waiting, forwarded, exported and refused."""
        standing = relay_status(db.session, relayed_model)
        click.echo(
            f"{standing['waiting']} bundles waiting to be forwarded,"
            f" {standing['forwarded']} forwarded, {standing['exported']} exported"
            f" to files, {len(standing['refused'])} refused;"
            f" {standing['producers']} producers may push here."
        )
        for row in standing["refused"]:
            click.echo(
                f"refused #{row.id} {row.producer_id}"
                f" {row.first_sequence}-{row.last_sequence}: {row.refused}"
            )

    return group

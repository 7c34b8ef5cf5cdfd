"""``manage.py notify test``: send a test message to every configured URL."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from tracker.notifications.routing import destinations
from tracker.notifications.sending import apprise_send

group = AppGroup("notify", help="Notifications through Apprise.")


@group.command("test")
@with_appcontext
def test() -> None:
    """Send a test message to every URL of NOTIFICATION_URLS and say how it went."""
    targets = destinations(current_app.config)
    if not targets:
        raise click.ClickException("NOTIFICATION_URLS is empty: nothing to test")
    app_name = current_app.config["APP_NAME"]
    failures = 0
    for target in targets:
        error = apprise_send(
            target.url,
            f"{app_name}: test",
            "A test message: notifications reach this destination.",
        )
        click.echo(f"{target.name}: {'sent' if not error else 'FAILED: ' + error}")
        failures += bool(error)
    if failures:
        raise SystemExit(1)

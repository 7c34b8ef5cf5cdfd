"""Quota: an overall target split into ceilings on offline field clients."""

from flask import Flask
from flask_babel import lazy_gettext as _l

from tracker.settings import Setting, integer, number

SETTINGS = (
    Setting("QUOTA_PULL_INTERVAL", 900, integer(10, 7 * 86400)),
    Setting("QUOTA_CLIENT_TIMEOUT", 10.0, number(0.5, 300)),
    Setting("QUOTA_OVERRIDE_HOURS", 24, integer(1, 24 * 90)),
)


def init_app(app: Flask) -> None:
    """Register the quota page, commands and periodic pull."""
    from quota import tasks
    from quota.cli import cli
    from quota.views import bp
    from tracker.background import add_periodic_task
    from tracker.templating import add_navigation

    app.register_blueprint(bp)
    app.cli.add_command(cli)
    add_navigation(app, "quota.index", _l("Quotas"))
    add_periodic_task(
        app, "quota-pull", tasks.PULL_TASK, app.config["QUOTA_PULL_INTERVAL"]
    )

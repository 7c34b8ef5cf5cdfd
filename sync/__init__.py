"""Sync: records created offline on field devices reach the server exactly once."""

from typing import Any

from flask import Flask
from flask_babel import lazy_gettext as _l

from tracker.settings import Invalid, Setting, integer


def model_names(value: Any) -> list[str]:
    """The allow-list: the model names whose transactions the server applies."""
    if not isinstance(value, list | tuple) or not all(
        isinstance(name, str) and 0 < len(name) <= 100 and name.isidentifier()
        for name in value
    ):
        raise Invalid('a list of model names, e.g. ["Household", "Member"]')
    return list(dict.fromkeys(value))


# Settings this domain adds to settings.cfg (tracker.settings.Setting objects).
SETTINGS = (
    Setting("SYNC_MODELS", [], model_names),
    Setting("SYNC_MAX_BATCH", 1000, integer(1, 10000)),
    Setting("SYNC_MAX_BODY_BYTES", 32 * 1024 * 1024, integer(1024, 2**31 - 1)),
    Setting("SYNC_MAX_FILE_BYTES", 2**30, integer(1024, 2**40)),
    Setting("SYNC_APPLY_RUN_SIZE", 1000, integer(1, 100000)),
    Setting("SYNC_APPLY_INTERVAL", 60, integer(5, 86400)),
)


def init_app(app: Flask) -> None:
    """Register the sync API, page, commands and periodic apply."""
    from sync import tasks
    from sync.api import bp as api_bp
    from sync.cli import group
    from sync.openapi import sync_paths
    from sync.views import bp as views_bp
    from tracker.background import add_periodic_task
    from tracker.openapi import add_paths
    from tracker.templating import add_navigation

    app.register_blueprint(api_bp)
    app.register_blueprint(views_bp)
    app.cli.add_command(group)
    add_paths(app, sync_paths())
    add_navigation(app, "sync.index", _l("Sync"))
    add_periodic_task(
        app, "sync-apply", tasks.APPLY_TASK, app.config["SYNC_APPLY_INTERVAL"]
    )

"""The allocation domain: grants, allocation pools, usage and the ledger."""

from flask import Flask
from flask_babel import lazy_gettext as _l

from tracker.settings import Setting, integer, number, string, timezone_name

# Settings this domain adds to settings.cfg (tracker.settings.Setting objects).
SETTINGS = (
    Setting("ALLOCATION_TIMEZONE", "UTC", timezone_name),
    Setting("ALLOCATION_CPU_RESOURCE", "cpu", string(100)),
    Setting("ALLOCATION_DISK_RESOURCE", "disk", string(100)),
    Setting("ALLOCATION_NEAR_PERCENT", 80.0, number(0, 100)),
    Setting("ALLOCATION_IMPORT_CHUNK_SIZE", 5000, integer(1, 100000)),
    Setting("ALLOCATION_UPLOAD_MAX_BYTES", 64 * 1024 * 1024, integer(1024, 2**31 - 1)),
)


def init_app(app: Flask) -> None:
    """Register the allocation domain's blueprints, commands and change log."""
    from allocation import changelog
    from allocation.api import bp as api_bp
    from allocation.cli import group
    from allocation.openapi import allocation_paths
    from allocation.views import bp as views_bp
    from tracker.openapi import add_paths
    from tracker.templating import add_navigation

    changelog.install()
    app.register_blueprint(api_bp)
    app.register_blueprint(views_bp)
    app.cli.add_command(group)
    add_paths(app, allocation_paths())
    add_navigation(app, "allocation.index", _l("Allocation"))

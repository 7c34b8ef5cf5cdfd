"""The allocation domain: grants, allocation pools, usage and the ledger."""

from flask import Flask

DOMAIN = "allocation"


def init_app(app: Flask) -> None:
    """Register the allocation domain's blueprints, commands and audit trail."""
    from flask_babel import lazy_gettext as _l

    from allocation import (
        alerts,
        record_views,  # noqa: F401  (its pages join views.bp)
    )
    from allocation.api import bp as api_bp
    from allocation.cli import group
    from allocation.devices import linked_machines
    from allocation.models import AUDITED_MODELS
    from allocation.openapi import allocation_paths
    from allocation.views import bp as views_bp
    from tracker.audit.trail import track
    from tracker.devices import add_device_describer
    from tracker.notifications.events import add_alert_source
    from tracker.openapi import add_paths
    from tracker.templating import add_navigation

    for model in AUDITED_MODELS:
        track(model, DOMAIN)
    app.register_blueprint(api_bp)
    app.register_blueprint(views_bp)
    app.cli.add_command(group)
    add_paths(app, allocation_paths())
    add_navigation(app, "allocation.index", _l("Allocation"))
    add_device_describer(app, linked_machines)
    add_alert_source(app, alerts.PREFIX, alerts.pool_alerts)

"""Sync: records created offline on field devices reach the server exactly once.

Importing the package loads nothing of the server, so that field applications
can use ``sync.client`` alone; ``init_app`` brings in the rest.
"""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the sync API, page, commands and periodic apply."""
    from flask_babel import lazy_gettext as _l

    from sync import tasks
    from sync.alerts import PREFIX, sync_alerts
    from sync.api import bp as api_bp
    from sync.cli import group
    from sync.metrics import sync_metrics
    from sync.openapi import sync_paths
    from sync.producers import linked_producers
    from sync.views import bp as views_bp
    from tracker.background import add_periodic_task
    from tracker.devices import add_device_describer
    from tracker.monitoring import add_metrics
    from tracker.notifications.events import add_alert_source
    from tracker.openapi import add_paths
    from tracker.templating import add_navigation

    app.register_blueprint(api_bp)
    add_metrics(app, sync_metrics)
    app.register_blueprint(views_bp)
    app.cli.add_command(group)
    add_paths(app, sync_paths())
    add_navigation(app, "sync.index", _l("Sync"))
    add_device_describer(app, linked_producers)
    add_alert_source(app, PREFIX, sync_alerts)
    add_periodic_task(
        app, "sync-apply", tasks.APPLY_TASK, app.config["SYNC_APPLY_INTERVAL"]
    )
    _track_records()


def _track_records() -> None:
    """Producers as people change them (deliveries have their own records)."""
    from sync.models import SyncProducer
    from tracker.audit.trail import track

    track(
        SyncProducer,
        "sync",
        (
            "producer_id",
            "description",
            "public_key",
            "encryption_key",
            "active",
            "credential_changed",
            "instance_id",
        ),
    )

"""Quota: an overall target split into ceilings on offline field clients.

Importing the package loads nothing of the server, so that field applications
can use ``quota.client`` alone; ``init_app`` brings in the rest.
"""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the quota page, API, commands, metrics and periodic pull."""
    from flask_babel import lazy_gettext as _l

    from quota import alerts, tasks
    from quota.api import bp as api_bp
    from quota.cli import cli
    from quota.devices import linked_clients
    from quota.metrics import quota_metrics
    from quota.openapi import quota_paths, quota_schemas
    from quota.views import bp
    from tracker.background import add_periodic_task
    from tracker.devices import add_device_describer
    from tracker.monitoring import add_metrics
    from tracker.notifications.events import add_alert_source, add_event_source
    from tracker.openapi import add_paths
    from tracker.templating import add_navigation

    app.register_blueprint(bp)
    app.register_blueprint(api_bp)
    app.cli.add_command(cli)
    add_metrics(app, quota_metrics)
    add_paths(app, quota_paths(), quota_schemas())
    add_navigation(app, "quota.index", _l("Quotas"))
    add_device_describer(app, linked_clients)
    add_alert_source(app, alerts.PREFIX, alerts.quota_alerts)
    add_event_source(app, "quota-approvals", alerts.approval_events)
    add_periodic_task(
        app, "quota-pull", tasks.PULL_TASK, app.config["QUOTA_PULL_INTERVAL"]
    )
    _track_records()


def _track_records() -> None:
    """Quotas, clients and approvals as people change them (pulls and
    check-ins are recorded in the quota's own history)."""
    from quota.models import ControllerQuota, QuotaApproval, QuotaClient
    from tracker.audit.trail import track

    track(
        ControllerQuota,
        "quota",
        ("record_kind", "target", "window_start", "window_expires", "active"),
    )
    track(
        QuotaClient,
        "quota",
        (
            "name",
            "endpoint",
            "secret",
            "instance_id",
            "weight",
            "max_ceiling",
            "active",
        ),
    )
    track(QuotaApproval, "quota", ("client_id", "extra", "expires"), ("create",))

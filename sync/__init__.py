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
    _report_held_at_worker_start()


def _report_held_at_worker_start() -> None:
    """A worker's start logs what is held and how to apply it."""
    from celery.signals import worker_ready

    # One receiver per process, whichever app connected it: it reads the app
    # of the worker that starts.
    worker_ready.connect(_log_held, weak=False, dispatch_uid="sync-held-at-start")


def _log_held(sender=None, **_kwargs) -> None:
    import logging

    from sqlalchemy.exc import SQLAlchemyError

    from sync.deliveries import DeliverySettings
    from sync.reapplying import held_by_model, held_notice
    from tracker.extensions import db

    flask_app = getattr(getattr(sender, "app", None), "flask_app", None)
    if flask_app is None:
        return
    log = logging.getLogger(__name__)
    with flask_app.app_context():
        try:
            held = held_by_model(db.session)
        except SQLAlchemyError as exc:  # not migrated yet, say
            log.warning("sync: could not count held transactions: %s", exc)
            return
        finally:
            db.session.remove()
        allowed = DeliverySettings.from_config(flask_app.config).allowed_models
    notice = held_notice(held, allowed)
    if notice:
        log.warning(notice)


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

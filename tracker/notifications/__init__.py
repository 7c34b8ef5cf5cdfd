"""Notifications through Apprise: conditions and events from every part of the
application, routed to destinations, sent from a task, listed on a page."""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the page, the command, the periodic evaluation and the
    background jobs' event source."""
    from flask_babel import lazy_gettext as _l

    from tracker.background import add_periodic_task
    from tracker.db_types import utcnow
    from tracker.housekeeping import add_housekeeping_step
    from tracker.notifications import tasks
    from tracker.notifications.cli import group
    from tracker.notifications.events import add_event_source, prune_notifications
    from tracker.notifications.jobs import job_events
    from tracker.notifications.views import bp
    from tracker.templating import add_navigation

    app.register_blueprint(bp)
    app.cli.add_command(group)
    add_periodic_task(
        app,
        "notifications",
        tasks.EVALUATE_TASK,
        app.config["NOTIFICATION_EVALUATE_INTERVAL"],
    )
    add_event_source(app, "jobs", job_events)
    add_housekeeping_step(
        app,
        "pruned_notifications",
        lambda session, config: prune_notifications(
            session, config["NOTIFICATION_DAYS"], utcnow()
        ),
    )
    add_navigation(app, "notifications.index", _l("Notifications"))

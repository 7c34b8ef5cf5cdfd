"""The instance registry: models, JSON API, pages, crawler, its command and tasks."""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the registry's blueprints, API description, command, periodic
    crawl, housekeeping step and resumer of stale runs, what a run's items are,
    navigation and template globals."""
    from flask_babel import lazy_gettext as _l

    from tracker.audit.trail import track
    from tracker.background import (
        add_periodic_task,
        require_visibility_timeout,
        route_task,
    )
    from tracker.batch.items import add_item_describer
    from tracker.batch.retries import add_retrier
    from tracker.devices import add_contact_listener
    from tracker.extensions import db
    from tracker.housekeeping import add_housekeeping_step, add_resumer
    from tracker.instances import alerts, launch, tallies, tasks
    from tracker.instances.api import bp as api_bp
    from tracker.instances.cli import crawl, inventory
    from tracker.instances.contact import note_contact_of, prune_contacts
    from tracker.instances.crawling import (
        CRAWL_OPERATION,
        SCOPE_ALL,
        describe_instances,
        prune_history,
    )
    from tracker.instances.fleet_api import bp as fleet_api_bp
    from tracker.instances.fleet_views import bp as fleet_views_bp
    from tracker.instances.geo import ATTRIBUTION
    from tracker.instances.idempotency import prune_keys
    from tracker.instances.metrics import registry_metrics
    from tracker.instances.models import Instance
    from tracker.instances.openapi import registry_paths, registry_schemas
    from tracker.instances.settings import CRAWL_SCHEDULE_ENTRY
    from tracker.instances.states import seconds_text
    from tracker.instances.views import bp as views_bp
    from tracker.monitoring import add_metrics
    from tracker.notifications.events import add_alert_source, add_event_source
    from tracker.openapi import add_paths
    from tracker.templating import FIRST, add_navigation

    tallies.install(db.session)
    app.register_blueprint(api_bp)
    # An instance's own fields, as people and clients change them (not its
    # crawl state); InstanceTag rows go through the request net.
    track(
        Instance,
        "instances",
        (
            "url",
            "contact",
            "email",
            "organisation",
            "enabled",
            "client_enabled",
            "admin_disabled",
            "approved",
            "location_manual",
            "contact_every",
            "contact_grace",
        ),
        actions=("update", "delete"),
    )
    app.register_blueprint(fleet_api_bp)
    app.register_blueprint(fleet_views_bp)
    add_metrics(app, registry_metrics)
    app.register_blueprint(views_bp)
    app.cli.add_command(crawl)
    app.cli.add_command(inventory)
    add_paths(app, registry_paths(), registry_schemas())
    add_periodic_task(
        app,
        CRAWL_SCHEDULE_ENTRY,
        launch.SCHEDULED_CRAWL_TASK,
        app.config["CRAWL_INTERVAL"],
        operation=(CRAWL_OPERATION, SCOPE_ALL),
    )
    # A chunk whose worker died goes to another once it cannot still be running.
    require_visibility_timeout(app, tasks.visibility_timeout(app.config))
    # Chunks go to a queue of their own: periodic jobs never wait behind them.
    route_task(app, tasks.CHUNK_TASK, tasks.CRAWL_QUEUE)
    add_resumer(app, CRAWL_OPERATION, tasks.resume_run)
    add_retrier(app, CRAWL_OPERATION, launch.retry_crawl)
    add_item_describer(
        app,
        CRAWL_OPERATION,
        describe_instances,
        {"done": _l("up"), "failed": _l("down"), "skipped": _l("skipped")},
    )
    add_housekeeping_step(
        app,
        "pruned_crawl_results",
        lambda session, config: prune_history(session, config["CRAWL_HISTORY_DAYS"]),
    )
    add_housekeeping_step(
        app,
        "pruned_contact_events",
        lambda session, config: prune_contacts(session, config["CRAWL_HISTORY_DAYS"]),
    )
    add_housekeeping_step(
        app, "pruned_registration_keys", lambda session, config: prune_keys(session)
    )
    add_contact_listener(app, note_contact_of)
    add_alert_source(app, alerts.PREFIX, alerts.instance_alerts)
    add_event_source(app, "registrations", alerts.registration_events)
    add_navigation(app, "instances.index", _l("Instances"), FIRST)
    add_navigation(app, "instances.statistics", _l("Statistics"), FIRST)
    app.jinja_env.globals["geoip_attribution"] = ATTRIBUTION
    app.jinja_env.filters["seconds_text"] = seconds_text

"""Background and bulk jobs, each tracked as a BatchOperation."""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the batch-operation API, its description and pages."""
    from flask_babel import lazy_gettext as _l

    from tracker.audit.trail import track
    from tracker.batch.api import bp as api_bp
    from tracker.batch.items import outcome_labels
    from tracker.batch.models import BatchOperation
    from tracker.batch.openapi import batch_paths
    from tracker.batch.views import bp as views_bp
    from tracker.openapi import add_paths
    from tracker.templating import BACKGROUND_JOBS, add_navigation

    app.register_blueprint(api_bp)
    app.register_blueprint(views_bp)
    # Jobs people start (a crawl, a pull, an import), from a page, the API or a
    # command; not the schedule's.
    track(
        BatchOperation,
        "batch",
        ("operation_type", "scope", "input_data"),
        actions=("create",),
        by_people_only=True,
    )
    add_paths(app, batch_paths())
    add_navigation(app, "batch.index", _l("Background jobs"), BACKGROUND_JOBS)
    app.jinja_env.globals["outcome_labels"] = lambda operation_type: outcome_labels(
        app, operation_type
    )

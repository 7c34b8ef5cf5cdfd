"""Background and bulk jobs, each tracked as a BatchOperation."""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the batch-operation API and pages."""
    from tracker.batch.api import bp as api_bp
    from tracker.batch.views import bp as views_bp

    app.register_blueprint(api_bp)
    app.register_blueprint(views_bp)

"""Background and bulk jobs, each tracked as a BatchOperation."""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the batch-operation API."""
    from tracker.batch.api import bp

    app.register_blueprint(bp)

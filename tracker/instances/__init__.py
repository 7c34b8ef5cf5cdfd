"""The instance registry: models, JSON API, pages."""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the registry's JSON and HTML blueprints and describe its API."""
    from tracker.instances.api import bp as api_bp
    from tracker.instances.openapi import registry_paths, registry_schemas
    from tracker.instances.views import bp as views_bp
    from tracker.openapi import add_paths

    app.register_blueprint(api_bp)
    app.register_blueprint(views_bp)
    add_paths(app, registry_paths(), registry_schemas())

"""The quota domain."""

from flask import Flask

# Settings this domain adds to settings.cfg (tracker.settings.Setting objects).
SETTINGS = ()


def init_app(app: Flask) -> None:
    """Register the quota domain's blueprints, commands and tasks."""

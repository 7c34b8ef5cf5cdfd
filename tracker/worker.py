"""The Celery entry module: ``celery -A tracker.worker worker`` (or ``beat``).

The one place, besides the web server, that builds an application at import.
"""

import sys

from tracker import create_app
from tracker.settings import SettingsError

try:
    flask_app = create_app()
except SettingsError as exc:
    sys.exit(f"settings: {exc}")

celery = flask_app.extensions["celery"]

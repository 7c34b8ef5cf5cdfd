"""Template helpers: navigation, safe links, crawled values as text."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

from tracker.instances.geo import ATTRIBUTION

NAVIGATION_KEY = "tracker.navigation"


def safe_href(url: Any) -> str | None:
    """The URL if it is http(s) with a host, else None: no javascript: links."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url.strip()


def crawled_text(value: Any) -> str:
    """A crawled value as plain text (escaped by the template like any text)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def add_navigation(app: Flask, endpoint: str, label: str) -> None:
    """Add a page to the top navigation (domains add theirs)."""
    app.extensions.setdefault(NAVIGATION_KEY, []).append((endpoint, label))


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(get_locale=get_locale, geoip_attribution=ATTRIBUTION)
    app.jinja_env.filters.update(safe_href=safe_href, crawled_text=crawled_text)
    add_navigation(app, "instances.index", _l("Instances"))
    add_navigation(app, "instances.statistics", _l("Statistics"))
    add_navigation(app, "batch.index", _l("Background jobs"))

    @app.context_processor
    def navigation() -> dict:
        return {"navigation": app.extensions[NAVIGATION_KEY]}

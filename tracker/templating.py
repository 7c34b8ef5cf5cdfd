"""Template helpers: navigation, safe links, crawled values as text."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask_babel import get_locale

NAVIGATION_KEY = "tracker.navigation"
# Where a page sits in the top navigation: the registry's pages first, then the
# background jobs, then the other domains in the order they are set up.
FIRST, BACKGROUND_JOBS, DOMAIN = 10, 50, 100


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


def add_navigation(
    app: Flask, endpoint: str, label: str, position: int = DOMAIN
) -> None:
    """Add a page to the top navigation (each part of the app adds its own)."""
    entries = app.extensions.setdefault(NAVIGATION_KEY, [])
    entries.append((position, endpoint, label))
    entries.sort(key=lambda entry: entry[0])  # stable: ties keep their order


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(get_locale=get_locale)
    app.jinja_env.filters.update(safe_href=safe_href, crawled_text=crawled_text)

    @app.context_processor
    def navigation() -> dict:
        entries = app.extensions.get(NAVIGATION_KEY, [])
        return {"navigation": [(endpoint, label) for _, endpoint, label in entries]}

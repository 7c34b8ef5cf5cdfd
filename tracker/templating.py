"""Template helpers: navigation, safe links, crawled values as text."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import orjson
from flask import Flask, send_from_directory
from flask_babel import format_decimal, get_locale, gettext
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup, escape

NAVIGATION_KEY = "tracker.navigation"
# Where a page sits in the top navigation: the registry's pages first, then the
# background jobs, then the other domains in the order they are set up.
FIRST, BACKGROUND_JOBS, DOMAIN = 10, 50, 100


def _orjson_text(value: Any, **_options: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # a lazy translation, say: written as tojson writes it
        return json.dumps(value, default=str)


def large_json(value: Any) -> Markup:
    """``tojson`` for a page's large data (the statistics' thousands of map
    points), written by orjson and escaped as ``tojson`` escapes it."""
    return htmlsafe_json_dumps(value, dumps=_orjson_text)


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


# How deep lists and mappings are laid out before the rest is shown as JSON,
# and how many elements of a list are laid out before the rest is counted.
VALUE_DEPTH = 3
VALUE_ITEMS = 50


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if isinstance(value, int | float):
        return format_decimal(value)
    return crawled_text(value)


def crawled_summary(value: Any, depth: int = 0) -> str:
    """A crawled value on one line: a list as its elements separated by commas,
    a mapping as ``key: value`` pairs, numbers in the locale's format."""
    if isinstance(value, list) and depth < VALUE_DEPTH:
        return ", ".join(crawled_summary(item, depth + 1) for item in value)
    if isinstance(value, dict) and depth < VALUE_DEPTH:
        inner = "; ".join(
            f"{key}: {crawled_summary(item, depth + 1)}"
            for key, item in sorted(value.items())
        )
        return f"({inner})" if depth else inner
    return _scalar_text(value)


def crawled_html(value: Any, depth: int = 0) -> Markup:
    """A crawled value laid out: a list as a list, a mapping as a definition
    list, nested up to ``VALUE_DEPTH``; every text escaped."""
    if isinstance(value, list) and value and depth < VALUE_DEPTH:
        items = Markup("").join(
            Markup("<li>%s</li>") % crawled_html(item, depth + 1)
            for item in value[:VALUE_ITEMS]
        )
        if len(value) > VALUE_ITEMS:
            more = gettext(
                "… and %(num)s more", num=format_decimal(len(value) - VALUE_ITEMS)
            )
            items += Markup('<li class="muted">%s</li>') % more
        return Markup('<ul class="value-list">%s</ul>') % items
    if isinstance(value, dict) and value and depth < VALUE_DEPTH:
        pairs = Markup("").join(
            Markup("<dt>%s</dt><dd>%s</dd>") % (key, crawled_html(item, depth + 1))
            for key, item in sorted(value.items())
        )
        return Markup('<dl class="value-map">%s</dl>') % pairs
    return escape(_scalar_text(value))


def country_label(code: str | None, name: str | None = None) -> str:
    """A country's name in the page's language (Babel's CLDR data), from its
    ISO 3166 alpha-2 code; the stored name if Babel has none; else Unknown."""
    locale = get_locale()
    if code and locale is not None:
        localized = locale.territories.get(code.upper())
        if localized:
            return localized
    return name or code or gettext("Unknown")


def country_names() -> dict[str, str]:
    """Every country's name in the page's language by ISO 3166 numeric id,
    as the world map keys its shapes."""
    import pycountry

    return {
        country.numeric: country_label(country.alpha_2, country.name)
        for country in pycountry.countries
    }


def add_navigation(
    app: Flask, endpoint: str, label: str, position: int = DOMAIN
) -> None:
    """Add a page to the top navigation (each part of the app adds its own)."""
    entries = app.extensions.setdefault(NAVIGATION_KEY, [])
    entries.append((position, endpoint, label))
    entries.sort(key=lambda entry: entry[0])  # stable: ties keep their order


def init_app(app: Flask) -> None:
    from tracker.auth.posted_once import once_value
    from tracker.auth.roles import PUBLIC, access

    app.jinja_env.globals.update(get_locale=get_locale, once_value=once_value)

    # Browsers ask for /favicon.ico whatever the page says: answer it.
    @app.get("/favicon.ico")
    @access(PUBLIC)
    def favicon():
        """The app's icon."""
        return send_from_directory(
            app.static_folder, "favicon.ico", mimetype="image/vnd.microsoft.icon"
        )

    app.jinja_env.filters.update(
        safe_href=safe_href,
        crawled_text=crawled_text,
        crawled_summary=crawled_summary,
        crawled_html=crawled_html,
        country=country_label,
        large_json=large_json,
    )
    app.jinja_env.globals.update(country_names=country_names)

    @app.context_processor
    def navigation() -> dict:
        from tracker.auth.roles import can, required_level

        entries = app.extensions.get(NAVIGATION_KEY, [])
        return {
            "navigation": [
                (endpoint, label)
                for _, endpoint, label in entries
                if can(required_level(app, endpoint, "GET"))
            ]
        }

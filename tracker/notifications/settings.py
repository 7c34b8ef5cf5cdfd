"""Settings of notifications: where they go (Apprise URLs) and how they are routed."""

from __future__ import annotations

from typing import Any

from tracker.settings import Invalid, Setting, SettingsError, integer

# What can happen, and so be routed (NOTIFICATION_ROUTES "events").
EVENT_KINDS = (
    "instance_down",
    "instance_overdue",
    "registration",
    "job_failed",
    "quota_warning",
    "quota_client_unreachable",
    "quota_override_approved",
    "allocation_near",
    "allocation_over",
    "sync_gap",
    "sync_set_aside",
    "sync_silent",
)
TAG_SHAPE = "a list of tag strings"


def _tags(value: Any, what: str) -> list[str]:
    if not isinstance(value, list | tuple) or not all(
        isinstance(tag, str) and tag for tag in value
    ):
        raise Invalid(f"{TAG_SHAPE} in {what!r}")
    return list(value)


def notification_urls(value: Any) -> list[dict]:
    """Apprise URLs, each a string or {"url": ..., "tags": [...]}, each checked
    by Apprise itself."""
    import apprise

    shape = 'a list of Apprise URLs or {"url": "...", "tags": ["..."]} dicts'
    if not isinstance(value, list | tuple):
        raise Invalid(shape)
    urls = []
    for position, entry in enumerate(value):
        if isinstance(entry, str):
            entry = {"url": entry}
        if not isinstance(entry, dict) or set(entry) - {"url", "tags"}:
            raise Invalid(shape)
        url = entry.get("url")
        if not isinstance(url, str) or apprise.Apprise.instantiate(url) is None:
            raise Invalid(f"{shape}; entry {position} is not a URL Apprise supports")
        urls.append({"url": url, "tags": _tags(entry.get("tags", []), "tags")})
    return urls


def notification_routes(value: Any) -> list[dict]:
    """Routes: which events, organisations or instance tags go to which URL tags."""
    shape = (
        'a list of {"to": ["url tag"], "events": [...], "organisations": [...], '
        '"tags": [...]} dicts'
    )
    if not isinstance(value, list | tuple):
        raise Invalid(shape)
    routes = []
    for entry in value:
        if not isinstance(entry, dict) or "to" not in entry:
            raise Invalid(shape)
        if set(entry) - {"to", "events", "organisations", "tags"}:
            raise Invalid(shape)
        route = {key: _tags(entry.get(key, []), key) for key in entry}
        unknown = set(route.get("events", [])) - set(EVENT_KINDS)
        if unknown:
            raise Invalid(
                f"{shape} whose events are among {', '.join(EVENT_KINDS)} "
                f"(not {', '.join(sorted(unknown))})"
            )
        routes.append(route)
    return routes


def check_routes_reach_urls(values: dict[str, Any]) -> None:
    """Every URL tag a route sends to must be the tag of some URL."""
    tags = {tag for entry in values["NOTIFICATION_URLS"] for tag in entry["tags"]}
    for route in values["NOTIFICATION_ROUTES"]:
        missing = sorted(set(route["to"]) - tags)
        if missing:
            raise SettingsError(
                f"NOTIFICATION_ROUTES is invalid: no URL of NOTIFICATION_URLS has "
                f"the tag {', '.join(repr(t) for t in missing)}"
            )


CHECKS = (check_routes_reach_urls,)

SETTINGS: tuple[Setting, ...] = (
    Setting("NOTIFICATION_URLS", [], notification_urls, secret=True),
    Setting("NOTIFICATION_ROUTES", [], notification_routes),
    Setting("NOTIFICATION_EVALUATE_INTERVAL", 300, integer(10, 86400)),
    Setting("NOTIFICATION_RETRIES", 5, integer(0, 50)),
    Setting("NOTIFICATION_BACKOFF_SECONDS", 30, integer(1, 86400)),
    Setting("NOTIFICATION_DAYS", 90, integer(1, 36500)),
)

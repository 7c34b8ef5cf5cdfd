"""Which configured destinations an event goes to.

A URL without tags receives every event. A tagged URL receives the events a
route sends to one of its tags; a route matches an event when each of its
criteria given (events, organisations, instance tags) matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache

import apprise


@dataclass(frozen=True)
class Destination:
    url: str
    tags: frozenset[str]

    @property
    def name(self) -> str:
        """The URL with its secrets masked: what pages and records show."""
        return masked(self.url)


@cache
def masked(url: str) -> str:
    plugin = apprise.Apprise.instantiate(url)
    return plugin.url(privacy=True) if plugin is not None else "(invalid URL)"


def destinations(config: Mapping) -> list[Destination]:
    return [
        Destination(entry["url"], frozenset(entry["tags"]))
        for entry in config["NOTIFICATION_URLS"]
    ]


def _matches(route: Mapping, kind: str, organisation: str | None, tags) -> bool:
    if route.get("events") and kind not in route["events"]:
        return False
    if route.get("organisations") and organisation not in route["organisations"]:
        return False
    return not route.get("tags") or bool(set(route["tags"]) & set(tags))


def route(
    config: Mapping, kind: str, organisation: str | None, tags: Iterable[str]
) -> list[Destination]:
    """The destinations of an event."""
    tags = tuple(tags)
    wanted = {
        tag
        for entry in config["NOTIFICATION_ROUTES"]
        if _matches(entry, kind, organisation, tags)
        for tag in entry["to"]
    }
    return [d for d in destinations(config) if not d.tags or d.tags & wanted]

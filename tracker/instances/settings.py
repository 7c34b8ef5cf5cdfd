"""Settings the instance registry adds: what and how to crawl, and where."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tracker.settings import (
    Invalid,
    Setting,
    SettingsError,
    boolean,
    existing_file,
    integer,
    networks,
    number,
    one_of,
    optional,
    rate_limit,
    schedule_seconds,
    string,
)

CRAWL_SCHEDULE_ENTRY = "crawl-instances"
DEFAULT_DENIED_NETWORKS = ["127.0.0.0/8", "::1/128"]


def crawling_endpoints(value: Any) -> list[dict]:
    shape = 'a list of {"url": "/path", "headers": {"Name": "value"}} dicts'
    if not isinstance(value, list | tuple):
        raise Invalid(shape)
    endpoints = []
    for entry in value:
        if not isinstance(entry, dict) or set(entry) - {"url", "headers"}:
            raise Invalid(shape)
        url = entry.get("url")
        headers = entry.get("headers") or {}
        if not isinstance(url, str) or not url.startswith("/"):
            raise Invalid(shape + " whose url starts with '/'")
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise Invalid(shape + " whose headers map strings to strings")
        endpoints.append({"url": url, "headers": dict(headers)})
    return endpoints


FIELD_OPTIONS: dict[str, Callable[[Any], Any]] = {
    "label": string(100),
    "chart": boolean,
    "chart_type": one_of("bar", "line", "pie"),
    "aggregation": one_of(None, "sum", "avg", "min", "max"),
    "chart_aggregation": one_of("count", "sum", "avg"),
    "chart_aggregate_by": string(100),
}


def crawled_fields_settings(value: Any) -> dict[str, dict]:
    if not isinstance(value, dict):
        raise Invalid("a dict of field name -> dict of options")
    fields = {}
    for field, options in value.items():
        if not isinstance(field, str) or not isinstance(options, dict):
            raise Invalid("a dict of field name -> dict of options")
        unknown = set(options) - set(FIELD_OPTIONS)
        if unknown:
            raise Invalid(
                f"options drawn from {', '.join(FIELD_OPTIONS)} "
                f"(field {field!r} has {', '.join(sorted(map(str, unknown)))})"
            )
        checked = {}
        for option, option_value in options.items():
            try:
                checked[option] = FIELD_OPTIONS[option](option_value)
            except Invalid as exc:
                raise Invalid(f"field {field!r} option {option!r} to be {exc}") from exc
        fields[field] = checked
    return fields


SETTINGS: tuple[Setting, ...] = (
    Setting("CRAWLING_ENDPOINTS", [], crawling_endpoints),
    Setting("CRAWLED_FIELDS_SETTINGS", {}, crawled_fields_settings),
    Setting("CRAWL_INTERVAL", 3600, integer(1, 7 * 86400)),
    Setting("CRAWL_TIMEOUT", 10.0, number(0.1, 600)),
    Setting("CRAWL_CONNECT_TIMEOUT", 5.0, number(0.1, 600)),
    Setting("CRAWL_MAX_BYTES", 1024 * 1024, integer(1024, 64 * 1024 * 1024)),
    Setting("CRAWL_MAX_DEPTH", 32, integer(1, 200)),
    Setting("CRAWL_MAX_KEYS", 1000, integer(1, 1_000_000)),
    Setting("CRAWL_CONCURRENCY", 200, integer(1, 5000)),
    Setting("CRAWL_CHUNK_SIZE", 1000, integer(1, 100000)),
    Setting("CRAWL_DATABASE_RETRIES", 20, integer(0, 1000)),
    Setting("CRAWL_ALLOW_NETWORKS", ["0.0.0.0/0", "::/0"], networks),
    Setting("CRAWL_DENY_NETWORKS", DEFAULT_DENIED_NETWORKS, networks),
    Setting("CRAWL_REQUIRE_APPROVAL", False, boolean),
    Setting("CRAWL_HISTORY_DAYS", 90, integer(1, 36500)),
    Setting("CRAWL_HISTORY_MAX_BYTES", 16 * 1024, integer(0, 64 * 1024 * 1024)),
    Setting("CRAWL_USER_AGENT", "InstanceTracker/1 (crawler)", string(200)),
    Setting("GEOIP_DATABASE", None, existing_file),
    Setting("API_REGISTRATION_RATE_LIMIT", "30/minute;1000/day", rate_limit),
    Setting("API_HEARTBEAT_RATE_LIMIT", "12/minute", rate_limit),
    # Expected contact of instances and organisations that set none: None means
    # "a server, reached by every crawl"; seconds mean "offline by design".
    Setting("CONTACT_EVERY", None, optional(integer(60, 366 * 86400))),
    Setting("CONTACT_GRACE", 3600, integer(0, 366 * 86400)),
)


def check_crawl_timing(values: dict[str, Any]) -> None:
    """The crawl timeout must fit in the crawl interval and the heartbeat timeout."""
    timeout = values["CRAWL_TIMEOUT"]
    schedule = values["CELERYBEAT_SCHEDULE"] or {}
    crawl_entry = schedule.get(CRAWL_SCHEDULE_ENTRY) or {}
    interval = schedule_seconds(crawl_entry.get("schedule", values["CRAWL_INTERVAL"]))
    if interval is not None and timeout >= interval:
        raise SettingsError(
            f"CRAWL_TIMEOUT = {timeout!r} is invalid: must be shorter than the crawl "
            f"interval ({interval:g} s)"
        )
    if values["BATCH_HEARTBEAT_TIMEOUT"] <= timeout:
        raise SettingsError(
            f"BATCH_HEARTBEAT_TIMEOUT = {values['BATCH_HEARTBEAT_TIMEOUT']!r} is "
            f"invalid: must be longer than CRAWL_TIMEOUT ({timeout:g} s)"
        )


CHECKS: tuple[Callable[[dict[str, Any]], None], ...] = (check_crawl_timing,)

"""Validation of what instances send about themselves: every field, every way wrong."""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

import pycountry

from tracker.api import invalid, refuse_unknown_keys
from tracker.instances.models import EMAIL_MAX, TEXT_MAX, URL_MAX

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
HOSTNAME_PATTERN = re.compile(
    r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?$"
)
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")

LOCATION_FIELDS = ("latitude", "longitude", "country_code", "city")
UPDATABLE_FIELDS = (
    "enabled",
    "url",
    "contact",
    "email",
    "organisation",
    "organization",
)


def text_value(field: str, value: Any, max_length: int = TEXT_MAX) -> str:
    """A non-empty single-line string of bounded length, stripped."""
    if not isinstance(value, str):
        raise invalid(field, "must be a string")
    value = value.strip()
    if not value:
        raise invalid(field, "must not be empty")
    if len(value) > max_length:
        raise invalid(field, f"must be at most {max_length} characters")
    if CONTROL_CHARACTERS.search(value):
        raise invalid(field, "must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(field, "must be valid Unicode text") from None
    return value


def url_value(value: Any, field: str = "url") -> str:
    """An http(s) base URL with a host, no credentials, query or fragment."""
    url = text_value(field, value, URL_MAX)
    if any(ch.isspace() for ch in url):
        raise invalid(field, "must not contain spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise invalid(field, "is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise invalid(field, "must start with http:// or https://")
    host = parts.hostname
    if not host:
        raise invalid(field, "must name a host")
    if parts.username is not None or parts.password is not None:
        raise invalid(field, "must not contain a user name or password")
    if parts.query or parts.fragment:
        raise invalid(field, "must not contain a query or fragment")
    if port == 0:
        raise invalid(field, "has an invalid port")
    if not _valid_host(host):
        raise invalid(field, "has an invalid host name")
    # Stored without a trailing slash so endpoint paths append cleanly.
    return url.rstrip("/")


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return len(ascii_host) <= 253 and bool(HOSTNAME_PATTERN.match(ascii_host))


def email_value(value: Any) -> str:
    email = text_value("email", value, EMAIL_MAX)
    if not EMAIL_PATTERN.match(email):
        raise invalid("email", "is not an e-mail address")
    return email


def organisation_value(data: dict[str, Any], required: bool) -> str | None:
    """Take ``organisation`` or its American spelling; both given must agree."""
    british, american = data.get("organisation"), data.get("organization")
    if british is not None and american is not None and british != american:
        raise invalid("organization", "differs from organisation; send one of them")
    field, value = (
        ("organisation", british) if british is not None else ("organization", american)
    )
    if value is None:
        if required:
            raise invalid("organisation", "is required (or organization)")
        return None
    return text_value(field, value)


def _required(data: dict[str, Any], field: str) -> Any:
    value = data.get(field)
    if value is None:
        raise invalid(field, "is required")
    return value


def parse_registration(data: dict[str, Any]) -> dict[str, Any]:
    """Return a new instance's fields; unknown keys are ignored, as clients expect."""
    return {
        "url": url_value(_required(data, "url")),
        "contact": text_value("contact", _required(data, "contact")),
        "email": email_value(_required(data, "email")),
        "organisation": organisation_value(data, required=True),
    }


def parse_update(data: dict[str, Any]) -> dict[str, Any]:
    """Return the fields to change; ``null`` leaves a field as it is."""
    refuse_unknown_keys(data, UPDATABLE_FIELDS, "instance")
    changes: dict[str, Any] = {}
    if data.get("enabled") is not None:
        if not isinstance(data["enabled"], bool):
            raise invalid("enabled", "must be true or false")
        changes["enabled"] = data["enabled"]
    if data.get("url") is not None:
        changes["url"] = url_value(data["url"])
    if data.get("contact") is not None:
        changes["contact"] = text_value("contact", data["contact"])
    if data.get("email") is not None:
        changes["email"] = email_value(data["email"])
    organisation = organisation_value(data, required=False)
    if organisation is not None:
        changes["organisation"] = organisation
    return changes


def _coordinate(data: dict[str, Any], field: str, limit: float) -> float:
    value = data.get(field)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(field, "must be a number")
    if not -limit <= value <= limit:
        raise invalid(field, f"must be between -{limit:g} and {limit:g}")
    return float(value)


def parse_location(data: dict[str, Any]) -> dict[str, Any]:
    """A location set by hand: coordinates, an ISO 3166 country code, a city."""
    refuse_unknown_keys(data, LOCATION_FIELDS, "location")
    code = text_value("country_code", _required(data, "country_code"), 2).upper()
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        raise invalid("country_code", "is not an ISO 3166 two-letter country code")
    city = data.get("city")
    return {
        "latitude": _coordinate(data, "latitude", 90),
        "longitude": _coordinate(data, "longitude", 180),
        "country_code": code,
        "country_name": getattr(country, "common_name", None) or country.name,
        "city": text_value("city", city, 200) if city is not None else None,
    }

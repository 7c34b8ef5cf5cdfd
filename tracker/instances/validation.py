"""Validation of what instances send about themselves: every field, every way wrong.

Each kind of body is one :class:`~tracker.fields.Fields` table: the parsers
below check requests against it, and :mod:`tracker.instances.openapi`
documents it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pycountry

from tracker.api import refuse_unknown_keys
from tracker.fields import (
    FieldError,
    Fields,
    Rule,
    email,
    text,
    text_value,
    url,
    whole_number,
)
from tracker.instances.models import EMAIL_MAX, TEXT_MAX, URL_MAX


def _boolean(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise FieldError(field, "must be true or false")
    return value


def _coordinate(limit: float) -> Rule:
    def check(field: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FieldError(field, "must be a number")
        if not -limit <= value <= limit:
            raise FieldError(field, f"must be between -{limit:g} and {limit:g}")
        return float(value)

    return Rule(check, {"type": "number", "minimum": -limit, "maximum": limit})


def _country_code(field: str, value: Any) -> str:
    code = text_value(field, value, 2).upper()
    if pycountry.countries.get(alpha_2=code) is None:
        raise FieldError(field, "is not an ISO 3166 two-letter country code")
    return code


REGISTRATION = Fields(
    {
        "url": url(URL_MAX),
        "contact": text(TEXT_MAX),
        "email": email(EMAIL_MAX),
        "organisation": text(TEXT_MAX),
        "organization": text(TEXT_MAX),
    },
    required=("url", "contact", "email"),
    description=(
        "Either organisation or organization is required. Extra keys are ignored."
    ),
)
UPDATE = Fields(
    {"enabled": Rule(_boolean, {"type": "boolean"}), **REGISTRATION.rules},
    nullable=True,
    closed=True,
    description="null leaves a field as it is.",
)
LOCATION = Fields(
    {
        "country_code": Rule(
            _country_code,
            {
                "type": "string",
                "maxLength": 2,
                "description": "an ISO 3166 two-letter country code",
            },
        ),
        "latitude": _coordinate(90),
        "longitude": _coordinate(180),
        "city": text(200),
    },
    required=("country_code", "latitude", "longitude"),
    closed=True,
)

UPDATABLE_FIELDS = tuple(UPDATE.rules)
TAG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
TAGS_MAX = 20
YEAR = 366 * 86400


def _seconds_or_default(minimum: int) -> Rule:
    """Seconds from ``minimum`` to a year, or 0 for "the default"."""
    inner = whole_number(0, YEAR)

    def check(field: str, value: Any) -> int:
        seconds = inner(field, value)
        if 0 < seconds < minimum:
            raise FieldError(field, f"must be 0 (the default) or from {minimum}")
        return seconds

    return Rule(check, {**inner.schema, "description": f"0, or {minimum} or more"})


def _tags(field: str, value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > TAGS_MAX:
        raise FieldError(field, f"must be a list of at most {TAGS_MAX} tags")
    for tag in value:
        if not isinstance(tag, str) or not TAG_PATTERN.match(tag):
            raise FieldError(
                field,
                "each tag must be 1 to 64 letters, digits or _ . : - "
                "starting with a letter or digit",
            )
    return sorted(set(value))


SCHEDULE = Fields(
    {
        "contact_every": _seconds_or_default(60),
        "contact_grace": whole_number(0, YEAR),
    },
    nullable=True,
    closed=True,
    description=(
        "Seconds between expected contacts, and of grace before late becomes "
        "overdue; 0 goes back to the default, null leaves it as it is."
    ),
)
ADMIN_UPDATE = Fields(
    {
        **UPDATE.rules,
        **SCHEDULE.rules,
        "tags": Rule(
            _tags,
            {"type": "array", "maxItems": TAGS_MAX, "items": {"type": "string"}},
        ),
    },
    nullable=True,
    closed=True,
    description="null leaves a field as it is; tags replace the instance's tags.",
)
PAUSE = Fields(
    {
        "until": Rule(
            lambda field, value: _future_time(field, value),
            {"type": "string", "format": "date-time"},
        ),
        "note": text(TEXT_MAX),
    },
    required=("until",),
    closed=True,
)
ORGANISATION_SPELLINGS = ("organisation", "organization")


def organisation_value(data: dict[str, Any], required: bool) -> str | None:
    """Take ``organisation`` or its American spelling; both given must agree."""
    british, american = data.get("organisation"), data.get("organization")
    if british is not None and american is not None and british != american:
        raise FieldError("organization", "differs from organisation; send one of them")
    field, value = (
        ("organisation", british) if british is not None else ("organization", american)
    )
    if value is None:
        if required:
            raise FieldError("organisation", "is required (or organization)")
        return None
    return REGISTRATION.clean(field, value)


def parse_registration(data: dict[str, Any]) -> dict[str, Any]:
    """Return a new instance's fields; unknown keys are ignored, as clients expect."""
    values = {name: REGISTRATION.check(data, name) for name in REGISTRATION.required}
    values["organisation"] = organisation_value(data, required=True)
    return values


def parse_update(data: dict[str, Any]) -> dict[str, Any]:
    """Return the fields to change; ``null`` leaves a field as it is."""
    refuse_unknown_keys(data, UPDATABLE_FIELDS, "instance")
    changes = {
        name: UPDATE.check(data, name)
        for name in UPDATABLE_FIELDS
        if name not in ORGANISATION_SPELLINGS and data.get(name) is not None
    }
    organisation = organisation_value(data, required=False)
    if organisation is not None:
        changes["organisation"] = organisation
    return changes


def _future_time(field: str, value: Any) -> datetime:
    text_value(field, value, 40)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise FieldError(field, "must be an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        raise FieldError(field, "must give its time zone (say, Z for UTC)")
    moment = moment.astimezone(UTC)
    if moment <= datetime.now(UTC):
        raise FieldError(field, "must be in the future")
    return moment


def parse_schedule(data: dict[str, Any]) -> dict[str, Any]:
    """An expected contact: 0 means "the default", null "as it is"."""
    refuse_unknown_keys(data, tuple(SCHEDULE.rules), "schedule")
    return {
        name: SCHEDULE.check(data, name) or None
        for name in SCHEDULE.rules
        if data.get(name) is not None
    }


def parse_admin_update(data: dict[str, Any]) -> tuple[dict[str, Any], list | None]:
    """An admin's changes: the client's fields, the expected contact and tags.
    Return (field changes, the new tags or None to leave them)."""
    refuse_unknown_keys(data, tuple(ADMIN_UPDATE.rules), "instance")
    client_fields = {k: v for k, v in data.items() if k in UPDATABLE_FIELDS}
    changes = parse_update(client_fields)
    schedule = {k: v for k, v in data.items() if k in SCHEDULE.rules}
    changes.update(parse_schedule(schedule))
    tags = data.get("tags")
    return changes, None if tags is None else ADMIN_UPDATE.clean("tags", tags)


def organisation_name(value: str) -> str:
    """An organisation named in a path."""
    return REGISTRATION.clean("organisation", value)


def parse_pause(data: dict[str, Any]) -> dict[str, Any]:
    """A maintenance pause: until when (in the future), and why."""
    refuse_unknown_keys(data, tuple(PAUSE.rules), "pause")
    note = data.get("note")
    return {
        "until": PAUSE.check(data, "until"),
        "note": PAUSE.clean("note", note) if note is not None else "",
    }


def parse_location(data: dict[str, Any]) -> dict[str, Any]:
    """A location set by hand: coordinates, an ISO 3166 country code, a city."""
    refuse_unknown_keys(data, tuple(LOCATION.rules), "location")
    code = LOCATION.check(data, "country_code")
    country = pycountry.countries.get(alpha_2=code)
    city = data.get("city")
    return {
        # A missing coordinate is refused as not a number.
        "latitude": LOCATION.clean("latitude", data.get("latitude")),
        "longitude": LOCATION.clean("longitude", data.get("longitude")),
        "country_code": code,
        "country_name": getattr(country, "common_name", None) or country.name,
        "city": LOCATION.clean("city", city) if city is not None else None,
    }

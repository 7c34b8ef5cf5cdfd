"""Field rules: how a value sent in a JSON body is checked, and how it is documented.

A :class:`Rule` pairs a check (clean the value or raise :class:`FieldError`)
with the JSON Schema that describes it; a :class:`Fields` table lists the rules
of one kind of body, so the same table validates requests and writes the
OpenAPI schema. Nothing here knows HTTP: the API layer turns a ``FieldError``
into its 400 answer, a form into its message, a command into its usage error.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# Lengths that fit the columns such values are kept in.
TEXT_MAX = 255
URL_MAX = 2000
EMAIL_MAX = 254  # the longest address SMTP carries (RFC 5321)

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
HOSTNAME_PATTERN = re.compile(
    r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?$"
)
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class FieldError(ValueError):
    """A value is missing or wrong; ``field`` names it, ``message`` says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def text_value(field: str, value: Any, max_length: int = TEXT_MAX) -> str:
    """A non-empty single-line string of bounded length, stripped."""
    if not isinstance(value, str):
        raise FieldError(field, "must be a string")
    value = value.strip()
    if not value:
        raise FieldError(field, "must not be empty")
    if len(value) > max_length:
        raise FieldError(field, f"must be at most {max_length} characters")
    if CONTROL_CHARACTERS.search(value):
        raise FieldError(field, "must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise FieldError(field, "must be valid Unicode text") from None
    return value


def url_value(value: Any, field: str = "url", max_length: int = URL_MAX) -> str:
    """An http(s) base URL with a host, no credentials, query or fragment."""
    url = text_value(field, value, max_length)
    if any(ch.isspace() for ch in url):
        raise FieldError(field, "must not contain spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise FieldError(field, "is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise FieldError(field, "must start with http:// or https://")
    host = parts.hostname
    if not host:
        raise FieldError(field, "must name a host")
    if parts.username is not None or parts.password is not None:
        raise FieldError(field, "must not contain a user name or password")
    if parts.query or parts.fragment:
        raise FieldError(field, "must not contain a query or fragment")
    if port == 0:
        raise FieldError(field, "has an invalid port")
    if not _valid_host(host):
        raise FieldError(field, "has an invalid host name")
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


def email_value(value: Any, field: str = "email", max_length: int = EMAIL_MAX) -> str:
    """An e-mail address: one ``@`` and a domain with a dot, no spaces."""
    email = text_value(field, value, max_length)
    if not EMAIL_PATTERN.match(email):
        raise FieldError(field, "is not an e-mail address")
    return email


@dataclass(frozen=True)
class Rule:
    """One field's check, ``check(field, value) -> cleaned value``, and its schema."""

    check: Callable[[str, Any], Any]
    schema: Mapping[str, Any]

    def __call__(self, field: str, value: Any) -> Any:
        return self.check(field, value)


def text(max_length: int = TEXT_MAX) -> Rule:
    """Rule for :func:`text_value`."""
    return Rule(
        lambda field, value: text_value(field, value, max_length),
        {"type": "string", "maxLength": max_length},
    )


def url(max_length: int = URL_MAX) -> Rule:
    """Rule for :func:`url_value`."""
    return Rule(
        lambda field, value: url_value(value, field, max_length),
        {"type": "string", "format": "uri", "maxLength": max_length},
    )


def email(max_length: int = EMAIL_MAX) -> Rule:
    """Rule for :func:`email_value`."""
    return Rule(
        lambda field, value: email_value(value, field, max_length),
        {"type": "string", "format": "email", "maxLength": max_length},
    )


def whole_number(minimum: int, maximum: int) -> Rule:
    """Rule for an integer from ``minimum`` to ``maximum`` (true is not 1)."""

    def check(field: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(field, "must be a whole number")
        if not minimum <= value <= maximum:
            raise FieldError(field, f"must be from {minimum} to {maximum}")
        return value

    return Rule(check, {"type": "integer", "minimum": minimum, "maximum": maximum})


def object_schema(
    properties: Mapping[str, Any],
    required: Iterable[str] = (),
    closed: bool = False,
    description: str | None = None,
) -> dict[str, Any]:
    """The JSON Schema of an object; ``closed`` refuses keys not listed."""
    schema: dict[str, Any] = {"type": "object"}
    required = list(required)
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    schema["properties"] = dict(properties)
    if description:
        schema["description"] = description
    return schema


def _or_null(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}


@dataclass(frozen=True)
class Fields:
    """The fields one kind of JSON body may hold, each with its rule.

    ``required`` fields must be present and not null; with ``nullable``, null
    means "leave as it is"; a ``closed`` body has no other keys.
    """

    rules: Mapping[str, Rule]
    required: tuple[str, ...] = ()
    nullable: bool = False
    closed: bool = False
    description: str | None = None

    def clean(self, name: str, value: Any) -> Any:
        """Return ``value`` cleaned by field ``name``'s rule, or raise FieldError."""
        return self.rules[name](name, value)

    def check(self, data: Mapping[str, Any], name: str) -> Any:
        """Clean ``data[name]``; a required field missing or null is refused."""
        value = data.get(name)
        if value is None and name in self.required:
            raise FieldError(name, "is required")
        return self.clean(name, value)

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of this body for the OpenAPI document."""
        properties = {
            name: _or_null(rule.schema) if self.nullable else dict(rule.schema)
            for name, rule in self.rules.items()
        }
        return object_schema(
            properties, self.required, self.closed, description=self.description
        )

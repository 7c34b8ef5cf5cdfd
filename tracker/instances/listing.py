"""The server list: filters and sorting by main or crawled fields, in SQL.

Plain functions: ``ListQuery.from_args`` reads what a page's query string asks for,
``list_statement`` turns it into one SELECT that the page paginates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Select, Text, and_, cast, or_, select
from sqlalchemy.sql.elements import ColumnElement

from tracker.instances.json_sql import json_number, json_text, json_version
from tracker.instances.models import HEALTHS, Instance, InstanceTag
from tracker.instances.states import STATES

MAIN_SORTS = {
    "url": Instance.url,
    "organisation": Instance.organisation,
    "contact": Instance.contact,
    "email": Instance.email,
    "registered": Instance.registered,
    "enabled": Instance.enabled,
    "health": Instance.health,
    "country": Instance.country_name,
    "last_attempt": Instance.last_attempt,
}
CRAWLED_PREFIX = "crawled."
SEARCHED_COLUMNS = (
    Instance.url,
    Instance.contact,
    Instance.email,
    Instance.organisation,
    Instance.city,
    Instance.country_name,
)
UNKNOWN_COUNTRY = "unknown"


@dataclass(frozen=True)
class ListQuery:
    """What the user asked the list for; every value already checked."""

    enabled: bool | None = None
    health: str | None = None
    country: str | None = None
    organisation: str | None = None
    text: str = ""
    state: str | None = None
    tag: str | None = None
    # A crawled field and the value it must have (as text: "3.3", "true").
    field: str | None = None
    value: str | None = None
    sort: str = "registered"
    descending: bool = True

    @classmethod
    def from_args(cls, args: Mapping[str, str], crawled_fields: set[str]) -> ListQuery:
        """Read query arguments, ignoring values that make no sense."""
        enabled = {"yes": True, "no": False}.get(args.get("enabled", ""))
        health = args.get("health") if args.get("health") in HEALTHS else None
        country = (args.get("country") or "").strip()
        if country and country != UNKNOWN_COUNTRY:
            country = country.upper()[:2]
        sort = args.get("sort", "registered")
        if sort not in MAIN_SORTS and not (
            sort.startswith(CRAWLED_PREFIX)
            and sort[len(CRAWLED_PREFIX) :] in crawled_fields
        ):
            sort = "registered"
        field = args.get("field") if args.get("field") in crawled_fields else None
        return cls(
            state=args.get("state") if args.get("state") in STATES else None,
            tag=(args.get("tag") or "").strip()[:64] or None,
            field=field,
            value=(args.get("value") or "")[:200] if field else None,
            enabled=enabled,
            health=health,
            country=country or None,
            organisation=(args.get("organisation") or "").strip()[:255] or None,
            text=(args.get("q") or "").strip()[:200],
            sort=sort,
            descending=args.get("dir", "desc" if sort == "registered" else "asc")
            == "desc",
        )

    def as_args(self, **changes: object) -> dict[str, str]:
        """Query arguments that reproduce this query, with some changed."""
        values = {
            "enabled": {True: "yes", False: "no"}.get(self.enabled, ""),
            "health": self.health or "",
            "country": self.country or "",
            "organisation": self.organisation or "",
            "q": self.text,
            "state": self.state or "",
            "tag": self.tag or "",
            "field": self.field or "",
            "value": self.value or "",
            "sort": self.sort,
            "dir": "desc" if self.descending else "asc",
        }
        values.update({k: str(v) for k, v in changes.items()})
        return {k: v for k, v in values.items() if v}


def crawled_sort_keys(field: str, dialect: str) -> tuple[ColumnElement, ...]:
    """(numeric, version, text) sort keys for a crawled field: numbers sort as
    numbers, version-like text as versions, everything else as text, on SQLite
    and PostgreSQL alike."""
    return (
        json_number(Instance.crawled, field, dialect),
        json_version(Instance.crawled, field, dialect),
        json_text(Instance.crawled, field),
    )


def list_statement(
    query: ListQuery, dialect: str, in_state: ColumnElement[bool] | None = None
) -> Select:
    """The SELECT for one listing: filters, then sort, then a stable tie-breaker.
    ``in_state``: SQL for "in the state the query asks for"."""
    statement = select(Instance)
    conditions = []
    if in_state is not None:
        conditions.append(in_state)
    if query.tag:
        conditions.append(
            Instance.id.in_(
                select(InstanceTag.instance_id).where(InstanceTag.tag == query.tag)
            )
        )
    if query.field:
        # As text on both databases, so that 3.3 matches a number as a string.
        text_value = cast(json_text(Instance.crawled, query.field), Text)
        conditions.append(text_value == query.value)
    if query.enabled is not None:
        conditions.append(Instance.enabled.is_(query.enabled))
    if query.health:
        conditions.append(Instance.health == query.health)
    if query.country == UNKNOWN_COUNTRY:
        conditions.append(Instance.country_code.is_(None))
    elif query.country:
        conditions.append(Instance.country_code == query.country)
    if query.organisation:
        conditions.append(
            Instance.organisation.icontains(query.organisation, autoescape=True)
        )
    if query.text:
        conditions.append(
            or_(*(c.icontains(query.text, autoescape=True) for c in SEARCHED_COLUMNS))
        )
    if conditions:
        statement = statement.where(and_(*conditions))

    if query.sort.startswith(CRAWLED_PREFIX):
        keys = crawled_sort_keys(query.sort[len(CRAWLED_PREFIX) :], dialect)
    else:
        keys = (MAIN_SORTS[query.sort],)
    ordered = [k.desc() if query.descending else k.asc() for k in keys]
    tie = Instance.id.desc() if query.descending else Instance.id.asc()
    return statement.order_by(*(k.nulls_last() for k in ordered), tie)

"""What admins change on an instance beyond its own fields; callers commit."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from tracker.instances.fleet import forget_states
from tracker.instances.geo import UNKNOWN
from tracker.instances.models import Instance, InstanceTag, OrganisationDefault
from tracker.instances.recording import LOCATION_FIELDS


def approve(instance: Instance) -> None:
    """Accept an instance for crawling (and so for the crawl headers)."""
    instance.approved = True


def set_manual_location(instance: Instance, location: dict[str, Any]) -> None:
    """Pin the location by hand; crawls leave it alone from now on."""
    for name in LOCATION_FIELDS:
        setattr(instance, name, location.get(name))
    instance.accuracy_km = None
    instance.location_manual = True


def clear_manual_location(instance: Instance) -> None:
    """Go back to GeoIP: unknown until the next crawl looks the address up."""
    for name in LOCATION_FIELDS:
        setattr(instance, name, getattr(UNKNOWN, name))
    instance.location_manual = False
    instance.address = None


def set_tags(session: Session, instance: Instance, tags: list[str]) -> None:
    """Replace an instance's tags."""
    session.execute(delete(InstanceTag).where(InstanceTag.instance_id == instance.id))
    instance.state = None  # a tag may be paused
    session.add_all(InstanceTag(instance_id=instance.id, tag=tag) for tag in tags)


def set_organisation_default(
    session: Session, organisation: str, schedule: dict[str, Any]
) -> OrganisationDefault:
    """Set the contact expected of an organisation's instances (None values go
    back to the settings' defaults); their states are judged again."""
    default = session.get(OrganisationDefault, organisation)
    if default is None:
        default = OrganisationDefault(organisation=organisation)
        session.add(default)
    default.contact_every = schedule.get("contact_every")
    default.contact_grace = schedule.get("contact_grace")
    forget_states(session, Instance.organisation == organisation)
    return default

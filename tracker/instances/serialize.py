"""JSON shapes of instances."""

from datetime import datetime

from tracker.instances.models import Instance
from tracker.instances.states import Expectations, State, instance_state


def instance_summary(instance: Instance) -> dict:
    """The summary real clients receive after GET and PATCH."""
    return {
        "uuid": instance.uuid,
        "enabled": instance.enabled,
        "url": instance.url,
        "contact": instance.contact,
        "email": instance.email,
        "organisation": instance.organisation,
        "registered": instance.registered.isoformat(),
    }


def _iso(value):
    return value.isoformat() if value is not None else None


def state_detail(state: State) -> dict:
    return {"name": state.name, "since": _iso(state.since), "reason": state.reason}


def instance_detail(
    instance: Instance, expected: Expectations, now: datetime, credentials: bool
) -> dict:
    """What the admin API lists: the summary plus its number, state, contact,
    crawl state and location; its uuid (its client's credential) only with
    ``credentials``."""
    summary = instance_summary(instance)
    if not credentials:
        del summary["uuid"]
    return {
        "id": instance.id,
        "state": state_detail(instance_state(instance, expected, now)),
        "last_contact": _iso(instance.last_contact),
        "last_contact_via": instance.last_contact_via,
        "down_since": _iso(instance.down_since),
        "contact_every": instance.contact_every,
        "contact_grace": instance.contact_grace,
        "tags": sorted(expected.tags.get(instance.id, ())),
        **summary,
        # "enabled" above is the effective state; these say who switched it off.
        "client_enabled": instance.client_enabled,
        "admin_disabled": instance.admin_disabled,
        "updated": instance.updated.isoformat(),
        "approved": instance.approved,
        "health": instance.health,
        "last_attempt": _iso(instance.last_attempt),
        "last_success": _iso(instance.last_success),
        "last_duration_ms": instance.last_duration_ms,
        "last_status": instance.last_status,
        "last_error": instance.last_error,
        "crawled": instance.crawled or {},
        "location": {
            "country_code": instance.country_code,
            "country_name": instance.country_name,
            "city": instance.city,
            "latitude": instance.latitude,
            "longitude": instance.longitude,
            "accuracy_km": instance.accuracy_km,
            "manual": instance.location_manual,
        },
    }

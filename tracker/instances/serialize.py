"""JSON shapes of instances."""

from tracker.instances.models import Instance


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


def instance_detail(instance: Instance) -> dict:
    """What the admin API lists: the summary plus bookkeeping."""
    return {**instance_summary(instance), "updated": instance.updated.isoformat()}

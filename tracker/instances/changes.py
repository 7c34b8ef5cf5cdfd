"""Changes to an instance's own fields, from its client or from an admin.

A client's ``enabled`` and an admin's disable are kept apart: the instance is
tracked only while both allow it, so the real client, which sends
``{"enabled": true}`` on every sync, never lifts an admin's disable.

Plain functions; the caller commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tracker.db_types import utcnow
from tracker.instances.models import Instance


def _apply(instance: Instance, changes: Mapping[str, Any]) -> None:
    if "url" in changes and changes["url"] != instance.url:
        # Crawl headers may hold tokens: a new address needs approving again.
        instance.approved = False
    for field, value in changes.items():
        setattr(instance, field, value)
    instance.enabled = instance.client_enabled and not instance.admin_disabled
    if changes:
        instance.updated = utcnow()
        instance.state = None  # to be judged again


def update_instance(instance: Instance, changes: Mapping[str, Any]) -> None:
    """Apply a client's validated changes; its ``enabled`` is its own say only."""
    changes = dict(changes)
    if "enabled" in changes:
        changes["client_enabled"] = changes.pop("enabled")
    _apply(instance, changes)


def admin_update_instance(instance: Instance, changes: Mapping[str, Any]) -> None:
    """Apply an admin's validated changes; ``enabled`` sets or lifts the admin's
    disable (a client that switched tracking off stays off)."""
    changes = dict(changes)
    if "enabled" in changes:
        changes["admin_disabled"] = not changes.pop("enabled")
    _apply(instance, changes)

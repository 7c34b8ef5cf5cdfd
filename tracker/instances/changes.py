"""Changes to an instance's own fields, from its client or the dashboard.

Plain functions; the caller commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tracker.db_types import utcnow
from tracker.instances.models import Instance


def update_instance(instance: Instance, changes: Mapping[str, Any]) -> None:
    """Apply validated field changes; a new URL needs approving again."""
    if "url" in changes and changes["url"] != instance.url:
        # Crawl headers may hold tokens: a new address needs approving again.
        instance.approved = False
    for field, value in changes.items():
        setattr(instance, field, value)
    if changes:
        instance.updated = utcnow()

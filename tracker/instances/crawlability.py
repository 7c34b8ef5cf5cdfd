"""The one rule of which instances may be crawled, in Python and in SQL.

An instance is crawled when it is enabled and, while CRAWL_REQUIRE_APPROVAL is
on, approved: crawl headers may hold tokens, so they go only to accepted hosts.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_

from tracker.instances.models import Instance

DISABLED = "disabled"
AWAITS_APPROVAL = "awaits approval"


def crawl_refusal(instance: Instance, require_approval: bool) -> str | None:
    """Why ``instance`` may not be crawled (DISABLED, AWAITS_APPROVAL), or None."""
    if not instance.enabled:
        return DISABLED
    if require_approval and not instance.approved:
        return AWAITS_APPROVAL
    return None


def crawlable(require_approval: bool) -> ColumnElement[bool]:
    """The same rule as a WHERE clause on ``instances``."""
    conditions = [Instance.enabled.is_(True)]
    if require_approval:
        conditions.append(Instance.approved.is_(True))
    return and_(*conditions)

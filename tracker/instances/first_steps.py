"""The home page's first-run checklist: what a new installation still lacks
before the fleet shows up and is crawled. A plain function over the session
and the settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tracker.auth.models import User
from tracker.instances.models import Instance
from tracker.instances.settings import DEFAULT_DENIED_NETWORKS

FIRST_USER = "admin"


@dataclass(frozen=True)
class FirstSteps:
    """Which of the first steps are done."""

    endpoints: bool
    registered: bool
    crawled: bool
    own_accounts: bool
    loopback_refused: bool

    @property
    def done(self) -> bool:
        return self.endpoints and self.registered and self.crawled and self.own_accounts


def first_steps(session: Session, config: Mapping[str, Any]) -> FirstSteps:
    """What the installation has done of its first steps."""
    others = session.scalar(
        select(func.count(User.id)).where(User.username != FIRST_USER)
    )
    return FirstSteps(
        endpoints=bool(config["CRAWLING_ENDPOINTS"]),
        registered=session.scalar(select(func.count(Instance.id))) > 0,
        crawled=session.scalar(
            select(func.count(Instance.id)).where(Instance.last_success.is_not(None))
        )
        > 0,
        own_accounts=bool(others),
        loopback_refused=all(
            network in config["CRAWL_DENY_NETWORKS"]
            for network in DEFAULT_DENIED_NETWORKS
        ),
    )

"""What an operator can act on: each instance's state, from its contact and
what is expected of it.

An instance with an expected contact schedule (its own, else its
organisation's, else ``CONTACT_EVERY``) is offline by design: it is judged by
how recently it made contact through any channel, and a failing crawl never
makes it down. One without a schedule is a server that should answer every
crawl: a failing crawl makes it down, unless it made contact another way
since. Plain functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import format_timedelta, gettext
from sqlalchemy import select
from sqlalchemy.orm import Session

from tracker.instances.models import (
    HEALTH_DOWN,
    HEALTH_UP,
    PAUSE_INSTANCE,
    PAUSE_ORGANISATION,
    PAUSE_TAG,
    VIA_CRAWL,
    Instance,
    InstanceTag,
    OrganisationDefault,
    Pause,
)

UP = "up"
CHECKING_IN = "checking_in"
LATE = "late"
OVERDUE = "overdue"
DOWN = "down"
PAUSED = "paused"
UNKNOWN = "unknown"
# Worst first: the order of the fleet summary and of "newest problems first".
STATES = (DOWN, OVERDUE, LATE, UNKNOWN, PAUSED, CHECKING_IN, UP)
PROBLEMS = (DOWN, OVERDUE, LATE)


@dataclass(frozen=True)
class Schedule:
    """Contact expected every ``every`` seconds, late for ``grace`` more.
    ``by_design``: set for the instance or its organisation (offline by design),
    rather than implied by the crawl interval."""

    every: int
    grace: int
    by_design: bool

    @property
    def allowed(self) -> timedelta:
        return timedelta(seconds=self.every + self.grace)


@dataclass(frozen=True)
class State:
    name: str
    since: datetime | None = None
    reason: str = ""
    # When time alone changes it (checking in becomes late...); None: only an
    # event does (a contact, a crawl, a change of schedule or pause).
    until: datetime | None = None

    @property
    def is_problem(self) -> bool:
        return self.name in PROBLEMS


@dataclass(frozen=True)
class Expectations:
    """Everything the states of a set of instances depend on beyond them."""

    defaults: Mapping[str, OrganisationDefault]
    pauses: tuple[Pause, ...]
    tags: Mapping[int, frozenset[str]]
    contact_every: int | None
    contact_grace: int
    crawl_interval: int

    def schedule(self, instance: Instance) -> Schedule:
        default = self.defaults.get(instance.organisation)
        every = instance.contact_every or (default and default.contact_every)
        grace = instance.contact_grace
        if grace is None and default is not None:
            grace = default.contact_grace
        if grace is None:
            grace = self.contact_grace
        if every:
            return Schedule(every, grace, by_design=True)
        if self.contact_every:
            return Schedule(self.contact_every, grace, by_design=True)
        return Schedule(self.crawl_interval, grace, by_design=False)

    def pause(self, instance: Instance, now: datetime) -> Pause | None:
        """The pause that lasts longest among those covering the instance."""
        tags = self.tags.get(instance.id, frozenset())
        covering = [
            p
            for p in self.pauses
            if p.until > now
            and (
                (p.kind == PAUSE_INSTANCE and p.value == str(instance.id))
                or (p.kind == PAUSE_TAG and p.value in tags)
                or (p.kind == PAUSE_ORGANISATION and p.value == instance.organisation)
            )
        ]
        return max(covering, key=lambda p: p.until, default=None)


def expectations(
    session: Session, config: Mapping, instance_ids: Iterable[int] | None = None
) -> Expectations:
    """Read the defaults, pauses and tags the states of these instances need."""
    tag_rows = select(InstanceTag.instance_id, InstanceTag.tag)
    if instance_ids is not None:
        tag_rows = tag_rows.where(InstanceTag.instance_id.in_(list(instance_ids)))
    tags: dict[int, set[str]] = {}
    for instance_id, tag in session.execute(tag_rows):
        tags.setdefault(instance_id, set()).add(tag)
    return Expectations(
        defaults={
            d.organisation: d for d in session.scalars(select(OrganisationDefault))
        },
        pauses=tuple(session.scalars(select(Pause))),
        tags={key: frozenset(value) for key, value in tags.items()},
        contact_every=config["CONTACT_EVERY"],
        contact_grace=config["CONTACT_GRACE"],
        crawl_interval=config["CRAWL_INTERVAL"],
    )


def instance_state(instance: Instance, expected: Expectations, now: datetime) -> State:
    """The state of one instance at ``now``."""
    pause = expected.pause(instance, now)
    if pause is not None:
        return State(PAUSED, pause.until, pause.note, until=pause.until)
    last = instance.last_contact
    schedule = expected.schedule(instance)
    on_time = last is not None and now - last <= timedelta(seconds=schedule.every)
    failing = instance.health == HEALTH_DOWN
    attempted = instance.last_attempt
    if (
        not schedule.by_design
        and failing
        and (
            instance.last_contact_via == VIA_CRAWL
            or not on_time
            or (attempted is not None and last is not None and attempted >= last)
        )
    ):
        # A server that should answer every crawl, and made no contact since.
        return State(DOWN, instance.down_since, instance.last_error)
    if last is None:
        return State(UNKNOWN, reason=gettext("no contact yet"))
    due = last + timedelta(seconds=schedule.every)
    if on_time:
        if instance.health == HEALTH_UP:
            return State(UP, until=due)
        return State(CHECKING_IN, last, _channel(instance.last_contact_via), due)
    if now - last <= schedule.allowed:
        return State(LATE, due, _expected(schedule), until=last + schedule.allowed)
    return State(OVERDUE, last + schedule.allowed, _expected(schedule))


def _channel(via: str | None) -> str:
    from tracker.instances.state_names import CHANNEL_NAMES

    return gettext("last contact by %(channel)s", channel=CHANNEL_NAMES.get(via, via))


def _expected(schedule: Schedule) -> str:
    return gettext(
        "contact expected every %(every)s (+%(grace)s of grace)",
        every=seconds_text(schedule.every),
        grace=seconds_text(schedule.grace),
    )


def seconds_text(seconds: int) -> str:
    """A duration as people say it, in the page's language: "1 hour", "90 seconds"."""
    unit = (
        "hour" if seconds % 3600 == 0 else "minute" if seconds % 60 == 0 else "second"
    )
    # Exact: in the unit that divides it, never rounded up to a larger one.
    return format_timedelta(
        timedelta(seconds=seconds), granularity=unit, threshold=10**9
    )

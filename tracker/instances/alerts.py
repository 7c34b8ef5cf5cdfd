"""What the registry tells through notifications: instances down or overdue
(and their recovery), and new registrations awaiting approval."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tracker.instances.fleet import fleet_states, store_states
from tracker.instances.models import Instance
from tracker.instances.states import DOWN, OVERDUE, PAUSED
from tracker.notifications.events import AlertReport, Event

PREFIX = "instance:"
KINDS = {DOWN: "instance_down", OVERDUE: "instance_overdue"}
REGISTRATIONS_LOOK_BACK = timedelta(days=1)


def instance_alerts(session: Session, config: Mapping, now: datetime) -> AlertReport:
    """Instances down or overdue now; paused and disabled ones are held."""
    fleet = fleet_states(session, config, now)
    # Judged in full here: what the pages read back until something changes.
    store_states(session, fleet, now)
    report = AlertReport()
    report.held.update(
        f"{PREFIX}{instance_id}:"
        for instance_id in session.scalars(
            select(Instance.id).where(Instance.enabled.is_(False))
        )
    )
    for instance_id, state in fleet.states.items():
        instance = fleet.instances[instance_id]
        if state.name == PAUSED:
            report.held.add(f"{PREFIX}{instance_id}:")
        elif state.name in KINDS:
            since = state.since.isoformat(timespec="minutes") if state.since else "?"
            report.active.append(
                Event(
                    kind=KINDS[state.name],
                    key=f"{PREFIX}{instance_id}:{state.name}",
                    title=f"{instance.url} is {state.name}",
                    body=f"Since {since}. {state.reason}".strip(),
                    organisation=instance.organisation,
                    tags=tuple(sorted(fleet.expected.tags.get(instance_id, ()))),
                    subject=instance.url,
                )
            )
    return report


def registration_events(
    session: Session, config: Mapping, now: datetime
) -> Iterator[Event]:
    """Registrations of the last day that no admin approved yet."""
    for instance in session.scalars(
        select(Instance).where(
            Instance.approved.is_(False),
            Instance.registered >= now - REGISTRATIONS_LOOK_BACK,
        )
    ):
        yield Event(
            kind="registration",
            key=f"registration:{instance.id}",
            title=f"New registration awaiting approval: {instance.url}",
            body=f"{instance.organisation}, {instance.contact} <{instance.email}>",
            organisation=instance.organisation,
        )

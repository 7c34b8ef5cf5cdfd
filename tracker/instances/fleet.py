"""The whole fleet's states at once: for the summary above the list, the list's
state filter, and the rows a page refreshes. Plain functions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, load_only

from tracker.instances.models import Instance
from tracker.instances.states import (
    STATES,
    Expectations,
    State,
    expectations,
    instance_state,
)

STATE_COLUMNS = (
    Instance.id,
    Instance.uuid,
    Instance.url,
    Instance.organisation,
    Instance.health,
    Instance.last_contact,
    Instance.last_contact_via,
    Instance.down_since,
    Instance.last_error,
    Instance.contact_every,
    Instance.contact_grace,
)
PROBLEMS_SHOWN = 5


@dataclass(frozen=True)
class FleetStates:
    expected: Expectations
    states: dict[int, State]
    instances: dict[int, Instance]

    def counts(self) -> list[tuple[str, int]]:
        """How many instances are in each state, worst first, zeros left out."""
        counted = Counter(state.name for state in self.states.values())
        return [(name, counted[name]) for name in STATES if counted[name]]

    def ids_in(self, name: str) -> list[int]:
        return [i for i, state in self.states.items() if state.name == name]

    def newest_problems(self) -> list[tuple[Instance, State]]:
        """Instances down, overdue or late, the most recent problem first."""
        problems = [
            (self.instances[i], state)
            for i, state in self.states.items()
            if state.is_problem
        ]
        problems.sort(
            key=lambda pair: pair[1].since or datetime.min.replace(tzinfo=UTC),
            reverse=True,
        )
        return problems[:PROBLEMS_SHOWN]


def fleet_states(session: Session, config: Mapping, now: datetime) -> FleetStates:
    """The state of every tracked (enabled) instance."""
    instances = {
        instance.id: instance
        for instance in session.scalars(
            select(Instance)
            .where(Instance.enabled.is_(True))
            .options(load_only(*STATE_COLUMNS))
        )
    }
    expected = expectations(session, config)
    return FleetStates(
        expected,
        {
            i: instance_state(instance, expected, now)
            for i, instance in instances.items()
        },
        instances,
    )

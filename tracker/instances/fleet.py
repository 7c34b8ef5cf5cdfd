"""The whole fleet's states: judged in full by the alert evaluation, kept in
the instances' ``state`` columns, and read back cheaply by the pages.

A stored state is valid until its ``state_until`` (when time alone changes
it) or until anything it depends on changes, which clears it (``state`` NULL:
see ``forget_states``). Pages trust the valid stored states, in SQL, and judge
only the others in memory; the evaluation writes back what it judged. Plain
functions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Row, and_, bindparam, func, not_, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from tracker.instances.models import Instance
from tracker.instances.states import (
    PROBLEMS,
    STATES,
    Expectations,
    State,
    expectations,
    instance_state,
)

STATE_COLUMNS = (
    Instance.id,
    Instance.url,
    Instance.organisation,
    Instance.health,
    Instance.last_contact,
    Instance.last_contact_via,
    Instance.down_since,
    Instance.last_attempt,
    Instance.last_error,
    Instance.contact_every,
    Instance.contact_grace,
)
STORED = (Instance.state, Instance.state_since, Instance.state_reason)
PROBLEMS_SHOWN = 5
EARLIEST = datetime.min.replace(tzinfo=UTC)


def _fresh(now: datetime) -> ColumnElement[bool]:
    """Stored states still valid at ``now``."""
    return and_(
        Instance.state.is_not(None),
        or_(Instance.state_until.is_(None), Instance.state_until > now),
    )


def forget_states(session: Session, *conditions: ColumnElement[bool]) -> None:
    """Clear the stored states of the instances matching ``conditions`` (all of
    them without any): a pause, a tag or a default that concerns many changed."""
    session.execute(update(Instance).where(*conditions).values(state=None))


@dataclass(frozen=True)
class FleetStates:
    expected: Expectations
    states: dict[int, State]
    instances: dict[int, Row]  # the STATE_COLUMNS of each instance


def fleet_states(session: Session, config: Mapping, now: datetime) -> FleetStates:
    """Judge the state of every tracked (enabled) instance."""
    # Plain rows, not ORM objects: the whole fleet at once.
    instances = {
        row.id: row
        for row in session.execute(
            select(*STATE_COLUMNS).where(Instance.enabled.is_(True))
        )
    }
    expected = expectations(session, config)
    return FleetStates(
        expected,
        {i: instance_state(row, expected, now) for i, row in instances.items()},
        instances,
    )


def store_states(session: Session, fleet: FleetStates, now: datetime) -> int:
    """Write back the judged states that differ from the stored ones."""
    stored = {
        row.id: (row.state, row.state_since, row.state_reason, row.state_until)
        for row in session.execute(
            select(Instance.id, *STORED, Instance.state_until).where(
                Instance.enabled.is_(True)
            )
        )
    }
    changed = [
        {
            "row_id": instance_id,
            "state": state.name,
            "state_since": state.since,
            "state_reason": state.reason,
            "state_until": state.until,
        }
        for instance_id, state in fleet.states.items()
        if stored.get(instance_id)
        != (state.name, state.since, state.reason, state.until)
    ]
    if changed:
        table = Instance.__table__
        session.execute(
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values(
                state=bindparam("state"),
                state_since=bindparam("state_since"),
                state_reason=bindparam("state_reason"),
                state_until=bindparam("state_until"),
            ),
            changed,
        )
    return len(changed)


@dataclass(frozen=True)
class FleetView:
    """What the list page shows of the fleet: the stored states where valid,
    the others judged now."""

    judged: dict[int, tuple[Row, State]]  # the instances whose state was stale
    counted: Counter
    stored_problems: list[tuple[Row, State]]

    def counts(self) -> list[tuple[str, int]]:
        """How many instances are in each state, worst first, zeros left out."""
        return [(name, self.counted[name]) for name in STATES if self.counted[name]]

    def newest_problems(self) -> list[tuple[Row, State]]:
        """Instances down, overdue or late, the most recent problem first."""
        problems = self.stored_problems + [
            pair for pair in self.judged.values() if pair[1].is_problem
        ]
        problems.sort(key=lambda pair: pair[1].since or EARLIEST, reverse=True)
        return problems[:PROBLEMS_SHOWN]

    def condition(self, name: str, now: datetime) -> ColumnElement[bool]:
        """SQL for "the instance is in state ``name``"."""
        judged = [i for i, (_, state) in self.judged.items() if state.name == name]
        return or_(and_(_fresh(now), Instance.state == name), Instance.id.in_(judged))


def fleet_view(session: Session, config: Mapping, now: datetime) -> FleetView:
    tracked = Instance.enabled.is_(True)
    counted = Counter(
        dict(
            session.execute(
                select(Instance.state, func.count())
                .where(tracked, _fresh(now))
                .group_by(Instance.state)
            ).all()
        )
    )
    stale = session.execute(
        select(*STATE_COLUMNS).where(tracked, not_(_fresh(now)))
    ).all()
    judged: dict[int, tuple[Row, State]] = {}
    if stale:
        expected = expectations(session, config, [row.id for row in stale])
        judged = {row.id: (row, instance_state(row, expected, now)) for row in stale}
        counted.update(state.name for _, state in judged.values())
    stored_problems = [
        (row, State(row.state, row.state_since, row.state_reason))
        for row in session.execute(
            select(Instance.id, Instance.url, *STORED)
            .where(tracked, _fresh(now), Instance.state.in_(PROBLEMS))
            .order_by(Instance.state_since.desc().nulls_last())
            .limit(PROBLEMS_SHOWN)
        )
    ]
    return FleetView(judged, counted, stored_problems)


def page_states(
    session: Session, config: Mapping, rows: Sequence[Instance], now: datetime
) -> dict[int, State]:
    """The states of the tracked instances on one page, judged now (a disabled
    one has none: it is not tracked)."""
    tracked = [row for row in rows if row.enabled]
    expected = expectations(session, config, [row.id for row in tracked])
    return {row.id: instance_state(row, expected, now) for row in tracked}

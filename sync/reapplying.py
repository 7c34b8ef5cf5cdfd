"""Re-applying what was set aside once its cause is fixed: transactions held
because their model was not on SYNC_MODELS, and quarantined ones whose payload
can now be opened (say, the producer's encryption key was registered since).

They go back in line as parked transactions of their producer and are retried in
sequence order, so a record's changes are still applied in the order the device
made them. Only those the producer's cursor has passed go back: one beyond it
(past a gap) is applied when the cursor reaches it, in its turn, and once. The
periodic apply releases held transactions on its own as soon as their model is
listed; ``manage.py sync reapply``, the page and the API do it on demand, for
quarantined ones too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from sync.applying import retry_parked
from sync.models import (
    HELD,
    PARKED,
    QUARANTINED,
    RECEIVED,
    IncomingTransaction,
    SyncProducer,
)
from sync.producers import lock_producer
from sync.receiving import opened

REOPEN_PAGE = 1000
REAPPLIED = "set aside earlier; re-applied"


@dataclass
class ReapplyTotals:
    released: int = 0  # put back in line
    applied: int = 0
    parked: int = 0  # back in line but waiting (for a parent, say)
    still_held: int = 0
    still_quarantined: int = 0


def _filters(table, producer_id: int, model: str | None) -> list:
    where = [table.c.producer_id == producer_id]
    if model is not None:
        where.append(table.c.model == model)
    return where


def _reopen_quarantined(
    session: Session,
    producer: SyncProducer,
    allowed_models: Collection[str],
    model: str | None,
    through: int,
) -> int:
    """Open again the quarantined transactions kept with their body; return how
    many went back in line."""
    table = IncomingTransaction.__table__
    released, after = 0, 0
    while True:
        rows = session.execute(
            select(table.c.id, table.c.body)
            .where(
                *_filters(table, producer.id, model),
                table.c.sequence <= through,
                table.c.status == QUARANTINED,
                table.c.body.is_not(None),
                table.c.id > after,
            )
            .order_by(table.c.id)
            .limit(REOPEN_PAGE)
        ).all()
        if not rows:
            return released
        for row in rows:
            after = row.id
            status, reason, payload, _ = opened(
                json.loads(row.body), producer.encryption_key, allowed_models
            )
            if status == QUARANTINED:
                values = {"reason": reason}
            else:
                values = {
                    "status": PARKED if status == RECEIVED else HELD,
                    "reason": REAPPLIED if status == RECEIVED else reason,
                    "payload": payload,
                    "body": None,
                }
                released += status == RECEIVED
            session.execute(update(table).where(table.c.id == row.id).values(values))


def _count(session: Session, producer_id: int, model: str | None, status: str) -> int:
    table = IncomingTransaction.__table__
    return session.scalar(
        select(func.count())
        .select_from(table)
        .where(*_filters(table, producer_id, model), table.c.status == status)
    )


def reapply_producer(
    session: Session,
    producer: SyncProducer,
    allowed_models: Collection[str],
    model: str | None = None,
    quarantined: bool = True,
) -> ReapplyTotals:
    """Put the producer's held (and quarantined) transactions whose cause is gone
    back in line and retry them; the caller commits."""
    lock_producer(session, producer.id)
    through = session.scalar(
        select(SyncProducer.applied_through).where(SyncProducer.id == producer.id)
    )
    table = IncomingTransaction.__table__
    totals = ReapplyTotals()
    if allowed_models:
        totals.released = session.execute(
            update(table)
            .where(
                *_filters(table, producer.id, model),
                table.c.sequence <= through,
                table.c.status == HELD,
                table.c.model.in_(sorted(allowed_models)),
            )
            .values(status=PARKED, reason=REAPPLIED)
        ).rowcount
    if quarantined:
        totals.released += _reopen_quarantined(
            session, producer, allowed_models, model, through
        )
    if totals.released:
        retried = retry_parked(session, producer.id)
        totals.applied = retried.unparked
    totals.parked = _count(session, producer.id, model, PARKED)
    totals.still_held = _count(session, producer.id, model, HELD)
    totals.still_quarantined = _count(session, producer.id, model, QUARANTINED)
    return totals


def reapply(
    session: Session,
    allowed_models: Collection[str],
    commit: Callable[[], None],
    producer_id: str | None = None,
    model: str | None = None,
    quarantined: bool = True,
) -> ReapplyTotals:
    """Re-apply set-aside transactions of every producer (or one), committing
    after each producer."""
    statement = select(SyncProducer).order_by(SyncProducer.id)
    if producer_id is not None:
        statement = statement.where(SyncProducer.producer_id == producer_id)
    totals = ReapplyTotals()
    for producer in session.scalars(statement).all():
        one = reapply_producer(session, producer, allowed_models, model, quarantined)
        commit()
        for name in vars(totals):
            setattr(totals, name, getattr(totals, name) + getattr(one, name))
    return totals


def releasable_held(session: Session, allowed_models: Collection[str]) -> list[int]:
    """The producers with held transactions of a model now listed."""
    if not allowed_models:
        return []
    table = IncomingTransaction.__table__
    return list(
        session.scalars(
            select(table.c.producer_id)
            .join(SyncProducer, SyncProducer.id == table.c.producer_id)
            .where(
                table.c.status == HELD,
                table.c.model.in_(sorted(allowed_models)),
                table.c.sequence <= SyncProducer.applied_through,
            )
            .distinct()
        )
    )


def release_held(
    session: Session, allowed_models: Collection[str], commit: Callable[[], None]
) -> ReapplyTotals:
    """Apply the held transactions whose model is now listed (the periodic
    apply calls this), committing after each producer."""
    totals = ReapplyTotals()
    for producer_id in releasable_held(session, allowed_models):
        producer = session.get(SyncProducer, producer_id)
        one = reapply_producer(session, producer, allowed_models, quarantined=False)
        commit()
        totals.released += one.released
        totals.applied += one.applied
    return totals


__all__ = ["ReapplyTotals", "reapply", "reapply_producer", "release_held"]


def held_by_model(session: Session) -> dict[str, int]:
    """How many transactions are held, by model."""
    table = IncomingTransaction.__table__
    return dict(
        session.execute(
            select(table.c.model, func.count())
            .where(table.c.status == HELD)
            .group_by(table.c.model)
            .order_by(table.c.model)
        )
        .tuples()
        .all()
    )


def held_notice(held: dict[str, int], allowed_models: Collection[str]) -> str | None:
    """A line saying what is held of models off ``allowed_models`` and how to
    apply it, None if nothing is (held ones of a model listed since are applied
    by the next periodic apply)."""
    held = {model: n for model, n in held.items() if model not in allowed_models}
    if not held:
        return None
    total = sum(held.values())
    models = ", ".join(f"{model} ({count})" for model, count in held.items())
    listed = ", ".join(sorted(allowed_models)) or "nothing"
    return (
        f"sync: {total} transactions are held, not applied: their models are not"
        f" on SYNC_MODELS (which lists {listed}): {models}; list them in"
        " SYNC_MODELS and the periodic apply applies them (manage.py sync reapply"
        " --held-only applies them at once)"
    )

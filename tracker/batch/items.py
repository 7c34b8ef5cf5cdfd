"""The items of an operation, as its detail page and API list them.

The batch package knows items only by id; the part of the application that
runs an operation type says what its items are with :func:`add_item_describer`
(the registry: each item of a crawl run is an instance).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from tracker.batch.models import (
    ITEM_DONE,
    ITEM_FAILED,
    ITEM_OUTCOMES,
    ITEM_SKIPPED,
    BatchItem,
)

DESCRIBERS_KEY = "tracker.batch_item_describers"
LABELS_KEY = "tracker.batch_outcome_labels"
PENDING = "pending"
# What a detail page lists unless asked for more: what did not go well.
UNSUCCESSFUL = (ITEM_FAILED, ITEM_SKIPPED)
OUTCOME_FILTERS = (*ITEM_OUTCOMES, PENDING)


@dataclass(frozen=True)
class ItemDescription:
    """What one item is: a label, a dashboard page about it, API fields."""

    label: str
    link: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


# Takes the session and item ids; returns a description of those it knows.
ItemDescriber = Callable[[Session, Sequence[int]], Mapping[int, ItemDescription]]


def add_item_describer(
    app: Flask,
    operation_type: str,
    describer: ItemDescriber,
    outcome_labels: Mapping[str, Any] | None = None,
) -> None:
    """Say what the items of ``operation_type`` operations are, and what their
    outcomes are called (a crawl run's done items are "up")."""
    app.extensions.setdefault(DESCRIBERS_KEY, {})[operation_type] = describer
    app.extensions.setdefault(LABELS_KEY, {})[operation_type] = dict(
        outcome_labels or {}
    )


def outcome_labels(app: Flask, operation_type: str) -> dict[str, Any]:
    """What the outcomes of ``operation_type`` items are called, by outcome."""
    labels: dict[str, Any] = {
        ITEM_DONE: _l("done"),
        ITEM_FAILED: _l("failed"),
        ITEM_SKIPPED: _l("skipped"),
        PENDING: _l("not attempted"),
    }
    labels.update(app.extensions.get(LABELS_KEY, {}).get(operation_type, {}))
    return labels


def items_statement(operation_id: int, outcomes: Sequence[str]) -> Select:
    """The operation's items with one of ``outcomes`` (PENDING: not settled)."""
    conditions = []
    settled = [o for o in outcomes if o != PENDING]
    if settled:
        conditions.append(BatchItem.outcome.in_(settled))
    if PENDING in outcomes:
        conditions.append(BatchItem.outcome.is_(None))
    statement = select(BatchItem).where(BatchItem.batch_operation_id == operation_id)
    if conditions:
        statement = statement.where(or_(*conditions))
    return statement.order_by(BatchItem.outcome, BatchItem.item_id)


def describe(
    app: Flask, session: Session, operation_type: str, items: Sequence[BatchItem]
) -> dict[int, ItemDescription]:
    """Descriptions of ``items`` from their operation type's describer; an
    item it does not know (say, deleted since) is labelled by its id."""
    describer = app.extensions.get(DESCRIBERS_KEY, {}).get(operation_type)
    ids = [item.item_id for item in items]
    known = dict(describer(session, ids)) if describer is not None and ids else {}
    return {i: known.get(i) or ItemDescription(f"#{i}") for i in ids}


def item_summary(item: BatchItem, description: ItemDescription) -> dict[str, Any]:
    """JSON shape of one item."""
    return {
        "id": item.item_id,
        "outcome": item.outcome or PENDING,
        "error": item.error,
        "label": description.label,
        **description.data,
    }


def parse_outcomes(raw: str | None) -> tuple[str, ...] | None:
    """Outcomes from a comma-separated query argument (default: failed and
    skipped; "all": every one); None if one of them is unknown."""
    if raw is None or raw == "":
        return UNSUCCESSFUL
    if raw == "all":
        return ()
    wanted = tuple(dict.fromkeys(part.strip() for part in raw.split(",")))
    if not all(part in OUTCOME_FILTERS for part in wanted):
        return None
    return wanted

"""One device, one identity.

A registry instance may be the same device as a quota client, a sync producer
or an allocation machine. Each part tells the registry of contact through its
own channel (``note_device_contact``) and describes the records it links to an
instance (``add_device_describer``); none of them imports another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from flask import Flask, current_app, has_app_context
from sqlalchemy import text
from sqlalchemy.orm import Session

LISTENERS_KEY = "tracker.device_contact_listeners"
DESCRIBERS_KEY = "tracker.device_describers"


@dataclass(frozen=True)
class LinkedDevice:
    """A record of another part that is this instance, as its page shows it."""

    kind: str  # "quota client", "sync producer", "allocation machine"
    name: str
    status: str  # a short line on its state
    last_contact: datetime | None = None
    url: str | None = None


ContactListener = Callable[[Session, int, str, datetime | None], None]
Describer = Callable[[Session, int], list[LinkedDevice]]


def add_contact_listener(app: Flask, listener: ContactListener) -> None:
    """``listener(session, instance_id, via, at)`` hears of linked devices' contact."""
    app.extensions.setdefault(LISTENERS_KEY, []).append(listener)


def note_device_contact(
    session: Session, instance_id: int | None, via: str, at: datetime | None = None
) -> None:
    """A device linked to ``instance_id`` made contact through ``via``; the
    caller commits. Nothing happens for an unlinked device."""
    if instance_id is None or not has_app_context():
        return
    for listener in current_app.extensions.get(LISTENERS_KEY, ()):
        listener(session, instance_id, via, at)


def add_device_describer(app: Flask, describer: Describer) -> None:
    """``describer(session, instance_id)`` lists what a part links to an instance."""
    app.extensions.setdefault(DESCRIBERS_KEY, []).append(describer)


def linked_devices(session: Session, instance_id: int) -> list[LinkedDevice]:
    return [
        device
        for describer in current_app.extensions.get(DESCRIBERS_KEY, ())
        for device in describer(session, instance_id)
    ]


def instance_id_of(session: Session, uuid: str) -> int | None:
    """The id of the registry's instance with this uuid, for linking to it."""
    return session.scalar(
        text("SELECT id FROM instances WHERE uuid = :uuid"), {"uuid": uuid}
    )


def instance_to_link(
    session: Session, instance_uuid: str | None, unlink: bool
) -> int | None:
    """For the ``link`` commands: the id of the instance INSTANCE_UUID names,
    or None with ``--unlink``; a usage error for anything else."""
    import click

    if unlink == (instance_uuid is not None):
        raise click.UsageError("give INSTANCE_UUID, or --unlink alone")
    if instance_uuid is None:
        return None
    instance_id = instance_id_of(session, instance_uuid)
    if instance_id is None:
        raise click.BadParameter(
            "no instance with this uuid", param_hint="INSTANCE_UUID"
        )
    return instance_id

"""A new instance, stored with plain INSERTs: its row, its first contact and its
audit event.

The answer is built from the values written, so nothing is read back. Plain
functions; the caller commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from tracker.audit.trail import record
from tracker.db_types import utcnow
from tracker.instances.models import VIA_REGISTRATION, ContactEvent, Instance, new_uuid
from tracker.instances.tallies import Chart, refresh_entries

_instances = Instance.__table__
_insert_instance = insert(_instances).returning(_instances.c.id)
_insert_contact = insert(ContactEvent.__table__)


def register_instance(
    session: Session, values: Mapping[str, Any], charts: Sequence[Chart]
) -> SimpleNamespace:
    """Store a new instance from validated ``values`` (awaiting approval, its
    registration its first contact); return its id and summary fields."""
    now = utcnow()
    row = {
        **values,
        "uuid": new_uuid(),
        "enabled": True,
        "approved": False,
        "registered": now,
        "updated": now,
        "last_contact": now,
        "last_contact_via": VIA_REGISTRATION,
    }
    # The other columns take their defaults, as an ORM insert gives them.
    instance_id = session.execute(_insert_instance, row).scalar_one()
    session.execute(
        _insert_contact,
        {"instance_id": instance_id, "at": now, "via": VIA_REGISTRATION},
    )
    # Who registered it, with what (never its uuid: the trail is read widely).
    record(session, "instances", "create", "Instance", instance_id, row["url"], values)
    # Counted in the charts as Unknown until its first crawl.
    refresh_entries(session, [(instance_id, True, {}, None)], charts)
    return SimpleNamespace(id=instance_id, **row)

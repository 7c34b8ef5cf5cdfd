"""Finding an instance by its uuid, as every page and endpoint does."""

from __future__ import annotations

from flask import abort
from sqlalchemy import select

from tracker.extensions import db
from tracker.instances.models import Instance


def instance_or_404(uuid: str, description: str) -> Instance:
    """The instance with this uuid (in any letter case), or a 404."""
    if "\x00" in uuid:  # no database stores it: no such instance
        abort(404, description)
    return db.one_or_404(
        select(Instance).filter_by(uuid=uuid.strip().lower()),
        description=description,
    )

"""Allocation machines linked to registry instances, as an instance's page
shows them (one device, one identity)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from allocation.models import Job, Machine
from tracker.devices import LinkedDevice


def linked_machines(session: Session, instance_id: int) -> list[LinkedDevice]:
    devices = []
    for machine in session.scalars(
        select(Machine).where(Machine.instance_id == instance_id)
    ):
        jobs, last_end = session.execute(
            select(func.count(Job.id), func.max(Job.ended)).where(
                Job.machine_id == machine.id
            )
        ).one()
        devices.append(
            LinkedDevice(
                kind="allocation machine",
                name=machine.name,
                status=f"{jobs} job runs charged",
                last_contact=last_end,
            )
        )
    return devices

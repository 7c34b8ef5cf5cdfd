"""Quota clients linked to registry instances, as an instance's page shows
them (one device, one identity)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from quota.models import ControllerQuota, QuotaClient
from tracker.devices import LinkedDevice


def linked_clients(session: Session, instance_id: int) -> list[LinkedDevice]:
    devices = []
    for client, kind in session.execute(
        select(QuotaClient, ControllerQuota.record_kind)
        .join(ControllerQuota, ControllerQuota.id == QuotaClient.quota_id)
        .where(QuotaClient.instance_id == instance_id)
    ):
        status = f"{kind}: {client.count} created, ceiling {client.acknowledged}"
        if client.last_error:
            status += f" ({client.last_error})"
        devices.append(
            LinkedDevice(
                kind="quota client",
                name=client.name,
                status=status,
                last_contact=client.last_contact,
            )
        )
    return devices

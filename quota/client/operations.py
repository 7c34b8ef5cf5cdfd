"""What a field client does with its quotas; plain functions, the caller commits."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from quota.client import clock
from quota.client.codes import (
    Approval,
    InvalidCode,
    OverrideRequest,
    override_key,
    verify_approval,
)
from quota.client.models import effective_ceiling


class CeilingBelowCount(ValueError):
    """A ceiling under the creations already made is refused."""

    def __init__(self, count: int) -> None:
        super().__init__(f"the ceiling is below the {count} records already created")
        self.count = count


class StaleCeiling(ValueError):
    """A raise whose lease has already ended arrived late: it is refused."""


def quota_state(
    session: Session, quota_model: type, override_model: type, kind: str
) -> dict[str, Any]:
    """Ceiling, count, window, lease, clock and the override codes used, for the
    controller."""
    quota = session.scalar(select(quota_model).where(quota_model.record_kind == kind))
    used = session.scalars(
        select(override_model.nonce).where(
            override_model.record_kind == kind, override_model.extra > 0
        )
    ).all()
    now = clock.now_timestamp()
    state = {
        "record_kind": kind,
        "ceiling": 0,
        "count": 0,
        "window_start": 0,
        "window_expires": 0,
        "confirmed": None,
        "lease_expires": 0,
        "effective_ceiling": 0,
        "used_overrides": list(used),
        "clock": now,
        "install": None,
    }
    if quota is not None:
        state.update(
            ceiling=quota.ceiling,
            count=quota.count,
            window_start=quota.window_start,
            window_expires=quota.window_expires,
            confirmed=quota.confirmed,
            lease_expires=quota.lease_expires,
            effective_ceiling=effective_ceiling(
                quota.ceiling, quota.confirmed, quota.lease_expires, now
            ),
            install=quota.install,
        )
    return state


def new_install() -> str:
    """A name for this install of the quota row (see ``Quota.install``)."""
    return secrets.token_hex(8)


def set_ceiling(
    session: Session,
    quota_model: type,
    kind: str,
    ceiling: int,
    start: int,
    expires: int,
    confirmed: int | None = None,
    lease_expires: int = 0,
    controller_time: int | None = None,
    clock_bound: int | None = None,
) -> None:
    """Set the ceiling, window and lease; refuse a ceiling below the current count.

    ``confirmed`` is what the ceiling falls back to once ``lease_expires``
    passes; ``controller_time`` lets the device note how far its clock is off."""
    now = clock.now_timestamp()
    if confirmed is not None and lease_expires and lease_expires <= now:
        raise StaleCeiling("the raise arrived after its lease ended")
    table = quota_model.__table__
    values = {
        "ceiling": ceiling,
        "window_start": start,
        "window_expires": expires,
        "confirmed": None if confirmed is None else min(confirmed, ceiling),
        "lease_expires": lease_expires if confirmed is not None else 0,
    }
    if controller_time is not None:
        values["clock_offset"] = now - controller_time
        values["clock_bound"] = clock_bound
    install = new_install()
    changed = session.execute(
        update(table)
        .where(table.c.record_kind == kind, table.c.count <= ceiling)
        .values(**values, install=func.coalesce(table.c.install, install))
    )
    if changed.rowcount == 1:
        return
    count = session.scalar(select(table.c.count).where(table.c.record_kind == kind))
    if count is not None:
        raise CeilingBelowCount(count)
    session.execute(
        insert(table).values(record_kind=kind, count=0, install=install, **values)
    )


def request_code(
    session: Session, quota_model: type, override_model: type, client: str, kind: str
) -> str:
    """The code a field user reads out to the supervisor to ask for more.

    Its nonce is kept on this device (the request stays open until a code for
    it is applied), so an approval code works only on the install that asked:
    a device wiped and reinstalled cannot apply an old code a second time.
    The caller commits."""
    table = override_model.__table__
    count = session.scalar(
        select(quota_model.count).where(quota_model.record_kind == kind)
    )
    nonce = session.scalar(
        select(table.c.nonce).where(table.c.record_kind == kind, table.c.extra == 0)
    )
    request = OverrideRequest.new(client, kind, count or 0)
    if nonce is None:
        session.execute(
            insert(table).values(
                nonce=request.nonce, record_kind=kind, extra=0, applied=0
            )
        )
    else:
        request = OverrideRequest(client, kind, count or 0, nonce)
    return request.code()


def apply_override(
    session: Session,
    quota_model: type,
    override_model: type,
    client: str,
    secret: str,
    kind: str,
    code: str,
) -> Approval:
    """Raise the ceiling by what a genuine approval code grants, once; a device
    that never heard from the controller opens the code's window."""
    approval = verify_approval(code, override_key(secret), client, kind)
    overrides = override_model.__table__
    taken = session.execute(
        update(overrides)
        .where(
            overrides.c.nonce == approval.nonce,
            overrides.c.record_kind == kind,
            overrides.c.extra == 0,
        )
        .values(extra=approval.extra, applied=clock.now_timestamp())
    )
    if taken.rowcount != 1:
        raise InvalidCode(
            "the approval code was already used, or was not asked for on this device"
        )
    table = quota_model.__table__
    install = new_install()
    raised = session.execute(
        update(table)
        .where(table.c.record_kind == kind)
        .values(
            ceiling=table.c.ceiling + approval.extra,
            confirmed=table.c.confirmed + approval.extra,
            install=func.coalesce(table.c.install, install),
        )
    )
    window = {
        "window_start": approval.window_start,
        "window_expires": approval.window_expires,
    }
    if raised.rowcount == 0:
        session.execute(
            insert(table).values(
                record_kind=kind,
                ceiling=approval.extra,
                count=0,
                install=install,
                **window,
            )
        )
    elif approval.window_expires:
        session.execute(
            update(table)
            .where(table.c.record_kind == kind, table.c.window_expires == 0)
            .values(**window)
        )
    return approval

"""What a field client does with its quotas; plain functions, the caller commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from quota.client.codes import (
    Approval,
    InvalidCode,
    OverrideRequest,
    override_key,
    verify_approval,
)


class CeilingBelowCount(ValueError):
    """A ceiling under the creations already made is refused."""

    def __init__(self, count: int) -> None:
        super().__init__(f"the ceiling is below the {count} records already created")
        self.count = count


def quota_state(
    session: Session, quota_model: type, override_model: type, kind: str
) -> dict[str, Any]:
    """Ceiling, count, window and the override codes used, for the controller."""
    quota = session.scalar(select(quota_model).where(quota_model.record_kind == kind))
    used = session.scalars(
        select(override_model.nonce).where(override_model.record_kind == kind)
    ).all()
    if quota is None:
        return {
            "record_kind": kind,
            "ceiling": 0,
            "count": 0,
            "window_start": 0,
            "window_expires": 0,
            "used_overrides": list(used),
        }
    return {
        "record_kind": kind,
        "ceiling": quota.ceiling,
        "count": quota.count,
        "window_start": quota.window_start,
        "window_expires": quota.window_expires,
        "used_overrides": list(used),
    }


def set_ceiling(
    session: Session,
    quota_model: type,
    kind: str,
    ceiling: int,
    start: int,
    expires: int,
) -> None:
    """Set the ceiling and window; refuse a ceiling below the current count."""
    table = quota_model.__table__
    changed = session.execute(
        update(table)
        .where(table.c.record_kind == kind, table.c.count <= ceiling)
        .values(ceiling=ceiling, window_start=start, window_expires=expires)
    )
    if changed.rowcount == 1:
        return
    count = session.scalar(select(table.c.count).where(table.c.record_kind == kind))
    if count is not None:
        raise CeilingBelowCount(count)
    session.execute(
        insert(table).values(
            record_kind=kind,
            ceiling=ceiling,
            count=0,
            window_start=start,
            window_expires=expires,
        )
    )


def request_code(session: Session, quota_model: type, client: str, kind: str) -> str:
    """The code a field user reads out to the supervisor to ask for more."""
    count = session.scalar(
        select(quota_model.count).where(quota_model.record_kind == kind)
    )
    return OverrideRequest.new(client, kind, count or 0).code()


def apply_override(
    session: Session,
    quota_model: type,
    override_model: type,
    client: str,
    secret: str,
    kind: str,
    code: str,
) -> Approval:
    """Raise the ceiling by what a genuine approval code grants, once."""
    approval = verify_approval(code, override_key(secret), client, kind)
    try:
        with session.begin_nested():
            session.execute(
                insert(override_model.__table__).values(
                    nonce=approval.nonce, record_kind=kind, extra=approval.extra
                )
            )
    except IntegrityError:
        raise InvalidCode("the approval code was already used") from None
    table = quota_model.__table__
    session.execute(
        update(table)
        .where(table.c.record_kind == kind)
        .values(ceiling=table.c.ceiling + approval.extra)
    )
    return approval

"""Supervised overrides: approve a client's request code with a signed code."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from quota.client.codes import (
    Approval,
    InvalidCode,
    OverrideRequest,
    approval_code,
    override_key,
)
from quota.controller import committed_total, lock_quota
from quota.models import ControllerQuota, QuotaApproval, QuotaHistory


class OverrideRefused(ValueError):
    """The request cannot be approved (wrong client, no headroom, seen before)."""


def approve(
    session: Session,
    quota: ControllerQuota,
    request_code: str,
    extra: int,
    now: datetime,
    valid_for: timedelta,
    approved_by_id: int | None = None,
) -> str:
    """Return the approval code for a request code; the caller commits.

    The extra records come out of the quota's unassigned headroom and are held
    for the client until it reports the code used (or the code expires unused).
    """
    try:
        request = OverrideRequest.parse(request_code)
    except InvalidCode as exc:
        raise OverrideRefused(str(exc)) from None
    if request.record_kind != quota.record_kind:
        raise OverrideRefused("the request is for another record kind")
    client = next((c for c in quota.clients if c.name == request.client), None)
    if client is None:
        raise OverrideRefused(f"no client {request.client!r} in this quota")
    if extra < 1:
        raise OverrideRefused("grant at least one record")
    lock_quota(session, quota)
    spare = quota.target - committed_total(session, quota)
    if extra > spare:
        raise OverrideRefused(f"only {spare} records are left under the target")
    expires = now + valid_for
    try:
        with session.begin_nested():
            session.add(
                QuotaApproval(
                    nonce=request.nonce,
                    client_id=client.id,
                    extra=extra,
                    expires=expires,
                    approved_by_id=approved_by_id,
                )
            )
    except IntegrityError:
        raise OverrideRefused("this request was already approved") from None
    session.add(
        QuotaHistory(
            quota_id=quota.id,
            client_id=client.id,
            event="override",
            count=request.count,
            ceiling=client.acknowledged,
            detail=f"{extra} more approved until {expires.isoformat()}",
            at=now,
        )
    )
    approval = Approval(
        client.name, quota.record_kind, extra, request.nonce, int(expires.timestamp())
    )
    return approval_code(approval, override_key(client.secret))

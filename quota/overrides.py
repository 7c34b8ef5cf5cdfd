"""Supervised overrides: approve a client's request code with a signed code."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from quota.client.codes import (
    Approval,
    InvalidCode,
    OverrideRequest,
    approval_code,
    override_key,
)
from quota.client.models import shown_duration
from quota.controller import (
    Controller,
    HttpTransport,
    Policy,
    QuotaNotActive,
    free_records,
    lock_quota,
)
from quota.models import ControllerQuota, QuotaApproval, QuotaHistory
from tracker.db_types import utcnow


class OverrideRefused(ValueError):
    """The request cannot be approved (wrong client, no headroom, seen before)."""


class TooFewFree(OverrideRefused):
    """Fewer records are free under the target than the approval asks for."""

    def __init__(
        self, spare: int, extra: int, target: int, reclaimed: int | None = None
    ) -> None:
        self.spare, self.extra, self.target = spare, extra, target
        free = (
            f"only {spare} of the target of {target} records"
            f" {'is' if spare == 1 else 'are'} free"
            if spare
            else f"none of the target of {target} records is free"
        )
        held = f"clients' ceilings and approvals not used yet hold {target - spare}"
        fewer = f"Approve {spare} or fewer" if spare else ""
        if reclaimed is None:
            message = (
                f"{extra} more cannot be approved: {free} ({held}). "
                + (f"{fewer}, or reclaim" if fewer else "Reclaim")
                + " first (ask idle clients for headroom): they are asked to"
                " confirm lower ceilings, and what they give back becomes free."
            )
        else:
            message = (
                f"{extra} more cannot be approved: idle clients were asked for"
                f" headroom and gave back {reclaimed}, so {free} ({held}). "
                + (f"{fewer}. " if fewer else "")
                + "Busy or unreachable clients, and those with a raise not yet"
                " confirmed, keep theirs."
            )
        super().__init__(message)


@dataclass(frozen=True)
class Approved:
    code: str
    warning: str = ""


def approve(
    session: Session,
    quota: ControllerQuota,
    request_code: str,
    extra: int,
    now: datetime,
    valid_for: timedelta,
    approved_by_id: int | None = None,
    max_skew: timedelta = timedelta(0),
    actor: str = "",
) -> Approved:
    """Return the approval code for a request code; the caller commits.

    The extra records come out of what no client may create yet -- the override
    reserve and headroom reclaimed from clients that confirmed a lower ceiling --
    and are held for the client until it reports the code used, or until a report
    made after the code's expiry plus the clock bound omits it.
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
    if not client.active:
        raise OverrideRefused(f"client {client.name!r} is inactive")
    if extra < 1:
        raise OverrideRefused("grant at least one record")
    lock_quota(session, quota)
    if session.scalar(
        select(QuotaApproval.id).where(QuotaApproval.nonce == request.nonce)
    ):
        raise OverrideRefused("this request was already approved")
    spare = free_records(session, quota)
    if extra > spare:
        raise TooFewFree(spare, extra, quota.target)
    expires = now + valid_for
    try:
        with session.begin_nested():
            session.add(
                QuotaApproval(
                    nonce=request.nonce,
                    client_id=client.id,
                    extra=extra,
                    expires=expires,
                    held_until=expires + max_skew,
                    approved_by_id=approved_by_id,
                )
            )
    except IntegrityError:
        raise OverrideRefused("this request was already approved") from None
    session.add(
        QuotaHistory(
            quota_id=quota.id,
            client_id=client.id,
            client_name=client.name,
            actor=actor,
            event="override",
            count=request.count,
            ceiling=client.acknowledged,
            detail=f"{extra} more approved until {expires.isoformat()}",
            at=now,
        )
    )
    approval = Approval(
        client.name,
        quota.record_kind,
        extra,
        request.nonce,
        int(expires.timestamp()),
        issued=int(now.timestamp()),
        max_skew=int(max_skew.total_seconds()),
        window_start=int(quota.window_start.timestamp()),
        window_expires=int(quota.window_expires.timestamp()),
    )
    warning = ""
    skew = client.clock_skew
    if skew is not None and abs(skew) > max_skew.total_seconds():
        way = "ahead of" if skew > 0 else "behind"
        warning = (
            f"{client.name}'s clock was {shown_duration(skew)} {way} this server's"
            " at its last contact: the code may be refused until the device clock"
            " is set right"
        )
    return Approved(approval_code(approval, override_key(client.secret)), warning)


def approve_request(
    session: Session,
    quota: ControllerQuota,
    request_code: str,
    extra: int,
    config: Mapping[str, Any],
    commit: Callable[[], None],
    approved_by_id: int | None = None,
    actor: str = "",
    reclaim: bool = False,
) -> Approved:
    """The one door for approvals (page, CLI, API): with ``reclaim``, first ask
    idle clients to confirm lower ceilings if too few records are free."""
    policy = Policy.from_config(config)
    reclaimed = None
    if reclaim:
        with HttpTransport.from_config(config) as transport:
            controller = Controller(
                session, quota, transport, commit, policy=policy, actor=actor
            )
            try:
                reclaimed = controller.reclaim(extra)
            except QuotaNotActive as exc:
                raise OverrideRefused(str(exc)) from None
    try:
        return approve(
            session,
            quota,
            request_code,
            extra,
            utcnow(),
            timedelta(hours=config["QUOTA_OVERRIDE_HOURS"]),
            approved_by_id,
            max_skew=policy.max_skew,
            actor=actor,
        )
    except TooFewFree as exc:
        if reclaimed is None:
            raise
        raise TooFewFree(exc.spare, extra, exc.target, reclaimed) from None

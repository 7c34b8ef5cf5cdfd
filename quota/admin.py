"""Administration of quotas and their clients: plain functions the CLI, the
page and the API share; the caller commits.

Every change keeps the invariant: a target never goes below what clients may
already create, and a removed client's records stay counted.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from quota.controller import (
    assumed_ceiling,
    lock_quota,
    outstanding_by_client,
)
from quota.models import ControllerQuota, QuotaClient, QuotaHistory
from tracker.db_types import utcnow
from tracker.fields import FieldError, url_value

UNSET = object()
NAME_LENGTH = 100
SECRET_LENGTH = 200


class AdminRefused(ValueError):
    """The change would break the quota; the message says why, with numbers.
    ``problems`` holds every field at fault when there are several."""

    def __init__(
        self,
        message: str,
        field: str | None = None,
        problems: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.problems = problems or ({field: message} if field else {})


def _history(
    session: Session,
    quota: ControllerQuota,
    event: str,
    detail: str,
    actor: str,
    client: QuotaClient | None = None,
) -> None:
    session.add(
        QuotaHistory(
            quota_id=quota.id,
            client_id=client.id if client else None,
            client_name=client.name if client else "",
            actor=actor,
            event=event,
            count=client.count if client else None,
            ceiling=client.acknowledged if client else None,
            detail=detail,
            at=utcnow(),
        )
    )


def quota_for(session: Session, kind: str) -> ControllerQuota | None:
    return session.scalar(
        select(ControllerQuota).where(ControllerQuota.record_kind == kind)
    )


def _window(start: datetime, expires: datetime) -> None:
    if expires <= start:
        raise AdminRefused("the window must end after it starts", "window_expires")


def create_quota(
    session: Session,
    kind: str,
    target: int,
    start: datetime,
    expires: datetime,
    actor: str = "",
) -> ControllerQuota:
    """Create the quota of ``target`` records of ``kind``."""
    if not kind.strip() or len(kind) > NAME_LENGTH:
        raise AdminRefused(f"a record kind of 1 to {NAME_LENGTH} characters", "kind")
    if target < 1:
        raise AdminRefused("the target must be at least 1", "target")
    _window(start, expires)
    if quota_for(session, kind) is not None:
        raise AdminRefused(f"a quota for {kind!r} already exists", "kind")
    quota = ControllerQuota(
        record_kind=kind, target=target, window_start=start, window_expires=expires
    )
    session.add(quota)
    session.flush()
    _history(session, quota, "created", f"target {target}", actor)
    return quota


def commitments(session: Session, quota: ControllerQuota) -> dict[str, int]:
    """What the target must cover: counts, room on clients, approvals, removed."""
    outstanding = outstanding_by_client(session, quota)
    may = sum(
        assumed_ceiling(session, c, outstanding.get(c.id, 0)) for c in quota.clients
    )
    return {
        "created": sum(c.count for c in quota.clients) + quota.retired,
        "approved": sum(outstanding.values()),
        "clients_may_create": may,
        "retired": quota.retired,
        "committed": may + quota.retired,
    }


def update_quota(
    session: Session,
    quota: ControllerQuota,
    target: int | None = None,
    start: datetime | None = None,
    expires: datetime | None = None,
    active: bool | None = None,
    actor: str = "",
) -> list[str]:
    """Change target, window or state; return what changed, in words.

    A target below what clients may already create is refused with the numbers:
    lower their ceilings first (a pull with a lower target cannot take back
    headroom a client holds)."""
    lock_quota(session, quota)
    changes = []
    if target is not None and target != quota.target:
        if target < 1:
            raise AdminRefused("the target must be at least 1", "target")
        numbers = commitments(session, quota)
        if target < numbers["committed"]:
            raise AdminRefused(
                f"the target cannot go below {numbers['committed']}: clients may"
                f" create {numbers['clients_may_create']} records (they created"
                f" {numbers['created'] - numbers['retired']}, and"
                f" {numbers['approved']} are approved but not used)"
                + (
                    f" and removed clients created {numbers['retired']}"
                    if numbers["retired"]
                    else ""
                )
                + "; deactivate clients or lower their maximum and pull, so that"
                " they confirm lower ceilings, then try again",
                "target",
            )
        changes.append(f"target {quota.target} -> {target}")
        quota.target = target
    new_start = start or quota.window_start
    new_expires = expires or quota.window_expires
    if (new_start, new_expires) != (quota.window_start, quota.window_expires):
        _window(new_start, new_expires)
        changes.append(
            f"window {new_start.isoformat()} - {new_expires.isoformat()}"
            " (sent to clients at the next pull)"
        )
        quota.window_start, quota.window_expires = new_start, new_expires
    if active is not None and active != quota.active:
        changes.append("active" if active else "inactive")
        quota.active = active
    if changes:
        _history(session, quota, "updated", "; ".join(changes), actor)
    return changes


def client_named(quota: ControllerQuota, name: str) -> QuotaClient | None:
    return next((c for c in quota.clients if c.name == name), None)


def find_client(
    session: Session, quota: ControllerQuota, name: str
) -> QuotaClient | None:
    """The client of this name, read alone (not the whole list of clients)."""
    return session.scalar(
        select(QuotaClient).where(
            QuotaClient.quota_id == quota.id, QuotaClient.name == name
        )
    )


def new_client_problems(
    session: Session, quota: ControllerQuota, name: str, endpoint: str, secret: str
) -> dict[str, str]:
    """What is wrong with a new client's name, endpoint and secret, by field."""
    problems = {}
    if not name.strip() or len(name) > NAME_LENGTH:
        problems["name"] = f"1 to {NAME_LENGTH} characters"
    elif find_client(session, quota, name) is not None:
        problems["name"] = f"{name!r} is already a client of this quota"
    try:
        url_value(endpoint, "endpoint")
    except FieldError as exc:
        problems["endpoint"] = exc.message
    if not secret or len(secret) > SECRET_LENGTH:
        problems["secret"] = f"1 to {SECRET_LENGTH} characters"
    return problems


def add_client(
    session: Session,
    quota: ControllerQuota,
    name: str,
    endpoint: str,
    secret: str,
    actor: str = "",
) -> QuotaClient:
    """Add a field client; it gets headroom at the next pull or check-in.
    Every field at fault is named at once (``AdminRefused.problems``)."""
    problems = new_client_problems(session, quota, name, endpoint, secret)
    if problems:
        raise AdminRefused(
            "; ".join(f"{field}: {message}" for field, message in problems.items()),
            next(iter(problems)),
            problems,
        )
    endpoint = url_value(endpoint, "endpoint")
    client = QuotaClient(name=name, endpoint=endpoint, secret=secret)
    quota.clients.append(client)
    session.flush()
    _history(session, quota, "client added", endpoint, actor, client)
    return client


def update_client(
    session: Session,
    quota: ControllerQuota,
    client: QuotaClient,
    weight: float | None = None,
    max_ceiling: int | object | None = UNSET,
    active: bool | None = None,
    actor: str = "",
) -> list[str]:
    """Change a client's weight, maximum or state; return what changed.

    Lower maxima and deactivations take effect as the client confirms a lower
    ceiling at the next pull or check-in."""
    changes = []
    if weight is not None and weight != client.weight:
        if not 0 <= weight <= 1000:
            raise AdminRefused("the weight must be from 0 to 1000", "weight")
        changes.append(f"weight {client.weight:g} -> {weight:g}")
        client.weight = weight
    if max_ceiling is not UNSET and max_ceiling != client.max_ceiling:
        if max_ceiling is not None and not (
            isinstance(max_ceiling, int) and max_ceiling >= 0
        ):
            raise AdminRefused("the maximum must be a whole number >= 0", "max")
        shown = "none" if max_ceiling is None else max_ceiling
        changes.append(f"maximum {shown}")
        client.max_ceiling = max_ceiling
    if active is not None and active != client.active:
        changes.append("active" if active else "inactive")
        client.active = active
    if changes:
        _history(session, quota, "client updated", "; ".join(changes), actor, client)
    return changes


def remove_client(
    session: Session, quota: ControllerQuota, client: QuotaClient, actor: str = ""
) -> int:
    """Remove a client; everything it may still create stays counted against
    the target (deactivate it and pull first to take that down to its count).
    Return how many records stay counted."""
    lock_quota(session, quota)
    held = assumed_ceiling(
        session, client, outstanding_by_client(session, quota).get(client.id, 0)
    )
    quota.retired += held
    _history(
        session,
        quota,
        "client removed",
        f"{client.name}: {held} records stay counted ({client.count} created)",
        actor,
    )
    quota.clients.remove(client)
    session.delete(client)
    return held

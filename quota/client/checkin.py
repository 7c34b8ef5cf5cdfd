"""Client-initiated check-in, for field devices the controller cannot reach
(laptops behind NAT): the device reports its state and takes the ceiling the
controller answers with. ``flask quota checkin URL`` in the field application::

    app.cli.add_command(checkin_cli(lambda: db.session, Quota, QuotaOverride,
                                    "clinic-1", CLIENT_SECRET, kinds=["visit"]))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import click
import requests
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.orm import Session

from quota.client.operations import (
    CeilingBelowCount,
    StaleCeiling,
    quota_state,
    set_ceiling,
)


class CheckInFailed(Exception):
    """The controller could not be reached or refused the check-in."""


@dataclass(frozen=True)
class CheckInResult:
    kind: str
    ceiling: int
    count: int
    window_expires: int


ANSWER_FIELDS = ("ceiling", "window_start", "window_expires")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_in(
    session: Session,
    quota_model: type,
    override_model: type,
    client: str,
    secret: str,
    kind: str,
    url: str,
    post: Callable[..., Any] = requests.post,
    timeout: float = 30.0,
) -> CheckInResult:
    """Report this device's state of ``kind`` to the controller at ``url`` and
    apply the ceiling it answers with; the caller commits."""
    state = quota_state(session, quota_model, override_model, kind)
    try:
        response = post(
            f"{url.rstrip('/')}/api/quotas/{kind}/checkin",
            json={"client": client, **state},
            headers={"Authorization": f"Bearer {secret}"},
            timeout=timeout,
            allow_redirects=False,
        )
        answer = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise CheckInFailed(f"the controller did not answer: {exc}") from None
    if not isinstance(answer, dict):
        raise CheckInFailed("the controller's answer is not a JSON object")
    if response.status_code != 200:
        message = answer.get("message") or f"HTTP {response.status_code}"
        raise CheckInFailed(f"the controller refused the check-in: {message}")
    if not all(_whole(answer.get(name)) for name in ANSWER_FIELDS):
        raise CheckInFailed("the controller's answer lacks a ceiling and window")
    optional = {
        name: answer.get(name) if _whole(answer.get(name)) else None
        for name in ("confirmed", "lease_expires", "controller_time", "max_clock_skew")
    }
    try:
        set_ceiling(
            session,
            quota_model,
            kind,
            answer["ceiling"],
            answer["window_start"],
            answer["window_expires"],
            confirmed=optional["confirmed"],
            lease_expires=optional["lease_expires"] or 0,
            controller_time=optional["controller_time"],
            clock_bound=optional["max_clock_skew"],
        )
    except CeilingBelowCount as exc:
        # Records were created while the answer travelled: keep the ceiling we
        # have; the next check-in reports the new count.
        raise CheckInFailed(
            f"{exc}; the ceiling is unchanged: check in again"
        ) from None
    except StaleCeiling as exc:
        raise CheckInFailed(f"{exc}: check the device clock") from None
    row = session.scalar(select(quota_model).where(quota_model.record_kind == kind))
    return CheckInResult(kind, row.ceiling, row.count, row.window_expires)


def checkin_cli(
    session: Callable[[], Session],
    quota_model: type,
    override_model: type,
    client: str,
    secret: str,
    kinds: Iterable[str],
) -> AppGroup:
    """The ``quota`` command group a field application adds to its CLI."""
    known = tuple(kinds)
    group = AppGroup("quota", help="This device's quotas.")

    @group.command("checkin")
    @click.argument("url")
    @click.option("--kind", "only", multiple=True, help="Only this record kind.")
    @click.option("--timeout", type=click.FloatRange(0.5, 600), default=30.0)
    def checkin(url: str, only: tuple[str, ...], timeout: float) -> None:
        """Ask the quota controller at URL for this device's ceilings."""
        if not url.startswith(("http://", "https://")):
            raise click.BadParameter("an http(s) URL", param_hint="URL")
        unknown = sorted(set(only) - set(known))
        if unknown:
            raise click.BadParameter(
                f"{', '.join(unknown)}: not counted here", param_hint="--kind"
            )
        db_session = session()
        failed = False
        for kind in only or known:
            try:
                result = check_in(
                    db_session,
                    quota_model,
                    override_model,
                    client,
                    secret,
                    kind,
                    url,
                    timeout=timeout,
                )
            except CheckInFailed as exc:
                db_session.rollback()
                click.echo(f"{kind}: {exc}", err=True)
                failed = True
                continue
            db_session.commit()
            click.echo(
                f"{kind}: ceiling {result.ceiling}, {result.count} created,"
                f" {max(0, result.ceiling - result.count)} left."
            )
        if failed:
            raise SystemExit(1)

    return group

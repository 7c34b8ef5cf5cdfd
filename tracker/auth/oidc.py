"""Single sign-on with OpenID Connect: from the provider's verified claims to
a user here, with the role the claims give.

A user is known by the provider's subject (``sub``), never by a user name: a
first sign-in creates the user (named after ``preferred_username`` or the
email, made unique), and every sign-in sets the role again from the role
claim, so a value taken away at the provider is taken away here at the next
sign-in. The provider decides even for the last active admin: a tracker whose
admins all lost the admin value gets one back when the provider grants it
again (or through ``manage.py create_usr --role admin``).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tracker.auth.accounts import USERNAME_MAX_LENGTH, end_sessions
from tracker.auth.models import User
from tracker.auth.roles import OPERATOR, ROLES

# An OIDC_ROLE_MAP value that grants the supervisor permission (with the
# operator role at least).
SUPERVISOR = "supervisor"
SUBJECT_MAX_LENGTH = 255
NOT_IN_USERNAMES = re.compile(r"[^A-Za-z0-9._@-]+")
# Usernames are looked up by this much of their start when made unique.
UNIQUE_PREFIX = USERNAME_MAX_LENGTH - 20


class SignInRefused(Exception):
    """The provider vouched for the user, but they may not sign in here."""

    NO_ROLE = "no_role"
    DISABLED = "disabled"
    NO_SUBJECT = "no_subject"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RoleRules:
    """Which claim gives the role, its values' roles, and the role of a user
    with none of them (None: refused)."""

    claim: str
    mapping: dict[str, str]
    default: str | None


def claim_values(claims: dict[str, Any], name: str) -> list[str]:
    """The string values of claim ``name`` (a dotted path reaches into
    objects, unless a claim has the whole name, as URL-named claims do)."""
    if name in claims:
        value = claims[name]
    else:
        value = claims
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def assigned_role(claims: dict[str, Any], rules: RoleRules) -> tuple[str, bool] | None:
    """(role, supervisor) that ``claims`` give, the highest role winning; None
    when they give none and there is no default role."""
    mapped = {
        rules.mapping[value]
        for value in claim_values(claims, rules.claim)
        if value in rules.mapping
    }
    supervisor = SUPERVISOR in mapped
    roles = mapped - {SUPERVISOR}
    if supervisor:
        roles.add(OPERATOR)
    if not roles:
        if rules.default is None:
            return None
        roles = {rules.default}
    return max(roles, key=ROLES.index), supervisor


def username_base(claims: dict[str, Any]) -> str:
    """A user name made of ``preferred_username``, else the email."""
    for key in ("preferred_username", "email"):
        value = claims.get(key)
        if isinstance(value, str):
            name = NOT_IN_USERNAMES.sub("-", value.strip()).strip("-.")
            if name:
                return name[:USERNAME_MAX_LENGTH]
    return "user"


def free_username(session: Session, base: str) -> str:
    """``base``, or ``base-2``, ``base-3``... whichever is not taken."""
    taken = set(
        session.scalars(
            select(User.username).where(
                User.username.startswith(base[:UNIQUE_PREFIX], autoescape=True)
            )
        )
    )
    if base not in taken:
        return base
    for number in itertools.count(2):
        suffix = f"-{number}"
        name = base[: USERNAME_MAX_LENGTH - len(suffix)] + suffix
        if name not in taken:
            return name
    raise AssertionError("unreachable")  # pragma: no cover


def sso_user(session: Session, claims: dict[str, Any], rules: RoleRules) -> User:
    """The user whom the provider's verified ``claims`` sign in: created at the
    first sign-in, given the claims' role at every one. Raise SignInRefused
    for a disabled user or claims that give no role (that user's sessions
    end: the provider no longer lets them in)."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 1 <= len(subject) <= SUBJECT_MAX_LENGTH:
        raise SignInRefused(SignInRefused.NO_SUBJECT)
    user = session.scalar(select(User).where(User.oidc_subject == subject))
    if user is not None and not user.active:
        raise SignInRefused(SignInRefused.DISABLED)
    assigned = assigned_role(claims, rules)
    if assigned is None:
        if user is not None:
            end_sessions(session, user)
        raise SignInRefused(SignInRefused.NO_ROLE)
    role, supervisor = assigned
    if user is None:
        user = User(
            username=free_username(session, username_base(claims)),
            # No password: the user signs in through the provider alone
            # (an empty hash matches no password).
            password_hash="",
            oidc_subject=subject,
            role=role,
            supervisor=supervisor,
        )
        session.add(user)
    else:
        user.role = role
        user.supervisor = supervisor
    return user

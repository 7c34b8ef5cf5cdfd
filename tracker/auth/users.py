"""Managing users: create with a role, change role, disable, reset a password,
delete; always leaving at least one active admin."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tracker.auth.accounts import end_sessions, password_problem
from tracker.auth.models import User
from tracker.auth.roles import ADMIN, ROLES, VIEWER
from tracker.fields import FieldError

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9._@-]{1,80}$")
TEMPORARY_PASSWORD_BYTES = 12


def role_value(role: str) -> str:
    if role not in ROLES:
        raise FieldError("role", f"must be one of {', '.join(ROLES)}")
    return role


def supervisor_value(role: str, supervisor: bool) -> bool:
    """Supervising quota overrides is an operator's permission (admins have
    it anyway): a viewer may not be given it."""
    if supervisor and role == VIEWER:
        raise FieldError("supervisor", "a viewer cannot supervise; make them operator")
    return supervisor


def username_value(session: Session, username: str) -> str:
    if not USERNAME_PATTERN.match(username or ""):
        raise FieldError("username", "use 1 to 80 letters, digits or . _ @ -")
    # Told apart by case, two names would look alike in lists and the trail.
    taken = session.scalar(
        select(User.username).where(func.lower(User.username) == username.lower())
    )
    if taken is not None:
        raise FieldError("username", f"{taken!r} already exists")
    return username


def default_role(session: Session) -> str:
    """The role a new user gets unless told: admin for the first, else viewer."""
    return ADMIN if session.scalar(select(func.count(User.id))) == 0 else VIEWER


def create_user(
    session: Session,
    username: str,
    password: str,
    role: str | None,
    min_length: int,
    supervisor: bool = False,
    must_change_password: bool = False,
) -> User:
    """Add a user to ``session``; a FieldError names what is wrong."""
    username = username_value(session, username)
    problem = password_problem(password, min_length)
    if problem is not None:
        raise FieldError("password", problem)
    role = role_value(role) if role else default_role(session)
    user = User(
        username=username,
        role=role,
        supervisor=supervisor_value(role, supervisor),
        must_change_password=must_change_password,
    )
    user.set_password(password)
    session.add(user)
    return user


def _other_active_admins(session: Session, user: User) -> int:
    # Locked (PostgreSQL) so two admins demoting each other at once cannot
    # both pass; SQLite lets one writer at a time anyway.
    return len(
        session.scalars(
            select(User.id)
            .where(User.role == ADMIN, User.active.is_(True), User.id != user.id)
            .with_for_update()
        ).all()
    )


def _keep_an_admin(session: Session, user: User, field: str) -> None:
    if user.role == ADMIN and user.active and _other_active_admins(session, user) == 0:
        raise FieldError(field, f"{user.username} is the last active admin")


def _an_admin_remains(session: Session, field: str) -> None:
    """Checked again once the change is written (and the write lock held), so
    that two admins demoting each other at once cannot both pass."""
    session.flush()
    remaining = session.scalar(
        select(func.count(User.id)).where(User.role == ADMIN, User.active.is_(True))
    )
    if not remaining:
        raise FieldError(field, "this would leave no active admin")


def change_role(session: Session, user: User, role: str, supervisor: bool) -> None:
    role = role_value(role)
    supervisor = supervisor_value(role, supervisor)
    if role != ADMIN:
        _keep_an_admin(session, user, "role")
    user.role = role
    user.supervisor = supervisor
    _an_admin_remains(session, "role")


def set_active(session: Session, user: User, active: bool) -> int:
    """Enable or disable ``user``; disabling ends their sessions (returned)."""
    if not active:
        _keep_an_admin(session, user, "active")
    user.active = active
    _an_admin_remains(session, "active")
    return 0 if active else end_sessions(session, user)


def reset_password(session: Session, user: User) -> str:
    """Give ``user`` a temporary password, returned once in clear, to be
    changed at the next sign-in; their sessions end."""
    password = secrets.token_urlsafe(TEMPORARY_PASSWORD_BYTES)
    user.set_password(password)
    user.must_change_password = True
    end_sessions(session, user)
    return password


def delete_user(session: Session, user: User) -> None:
    _keep_an_admin(session, user, "user")
    session.delete(user)
    _an_admin_remains(session, "user")

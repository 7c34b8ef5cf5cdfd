"""Who may do what: three roles and one permission, checked in one place.

- **viewer** reads every page and the read API, never credentials;
- **operator** also acts on the fleet: crawls, approvals, pulls, imports;
- **admin** also manages users and others' tokens, producers, quota and
  allocation records, and deletes;
- **supervise** approves quota overrides: admins have it, and operators an
  admin grants it to.

Every view has one access level: ``PUBLIC`` (no sign-in, or its own
credentials such as an instance's uuid, a producer's signature or a quota
client's secret), a role, or ``SUPERVISE``. A blueprint sets the levels of its
reads (GET, HEAD, OPTIONS) and of its writes with :func:`blueprint_access`; a
view overrides them with :func:`access`. A view with neither is for admins.
A read-only API token acts as a viewer, whatever its user's role.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Blueprint, Flask, current_app, g, request
from flask_login import current_user
from werkzeug.exceptions import Forbidden, HTTPException

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)
SUPERVISE = "supervise"
PUBLIC = "public"
LEVELS = (PUBLIC, *ROLES, SUPERVISE)
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_RANK = {VIEWER: 0, OPERATOR: 1, ADMIN: 2}

View = TypeVar("View", bound=Callable)


def access(level: str) -> Callable[[View], View]:
    """Give a view its access level, whatever its blueprint's defaults."""
    if level not in LEVELS:
        raise ValueError(f"unknown access level {level!r}")

    def decorate(view: View) -> View:
        view.access_level = level
        return view

    return decorate


def blueprint_access(bp: Blueprint, read: str = VIEWER, write: str = OPERATOR) -> None:
    """Set the access levels of ``bp``'s reads and writes."""
    if read not in LEVELS or write not in LEVELS:
        raise ValueError(f"unknown access level in {read!r}, {write!r}")
    bp.access_defaults = (read, write)


def required_level(app: Flask, endpoint: str, method: str) -> str:
    """The access level of ``endpoint`` for ``method``."""
    view = app.view_functions.get(endpoint)
    level = getattr(view, "access_level", None)
    if level is not None:
        return level
    if endpoint == "static" or endpoint.endswith(".static"):
        return PUBLIC
    blueprint = app.blueprints.get(endpoint.rpartition(".")[0])
    defaults = getattr(blueprint, "access_defaults", None)
    if defaults is None:
        return ADMIN
    return defaults[0] if method in READ_METHODS else defaults[1]


def has_role(role: str, wanted: str) -> bool:
    """True when ``role`` is ``wanted`` or above it."""
    return _RANK.get(role, -1) >= _RANK[wanted]


def permits(user, level: str, read_only: bool = False) -> bool:
    """True when ``user`` (signed in; by a read-only token if ``read_only``)
    may use a view of access ``level``."""
    if level == PUBLIC:
        return True
    if not user.is_authenticated:
        return False
    role = VIEWER if read_only else user.role
    if level == SUPERVISE:
        return role == ADMIN or (role == OPERATOR and user.supervisor)
    return has_role(role, level)


def can(level: str) -> bool:
    """True when the current user may use a view of access ``level``: for
    templates, to offer only the actions the user may take."""
    return permits(current_user, level, g.get("read_only_token", False))


def sees_credentials() -> bool:
    """True when the current user may be shown credentials (an instance's
    uuid, its client's key): operators and admins; never a viewer, nor a
    read-only token."""
    return can(OPERATOR)


def may(endpoint: str, method: str = "POST") -> bool:
    """True when the current user may use ``endpoint``: for templates."""
    return can(required_level(current_app, endpoint, method))


def may_post(url: str) -> bool:
    """True when the current user may post to ``url`` (a path of this app):
    the button macro offers only what the user may do."""
    adapter = current_app.url_map.bind("")
    try:
        endpoint, _arguments = adapter.match(url.split("?", 1)[0], method="POST")
    except HTTPException:
        return False
    return may(endpoint)


def enforce_access():
    """Refuse the request unless the current user may use its view: sign in
    first (401, or the sign-in page), then 403 for a role too low."""
    if request.endpoint is None:
        return None  # no route: routing answers 404 or 405
    level = required_level(current_app, request.endpoint, request.method)
    if level == PUBLIC:
        return None
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    if not can(level):
        if g.get("read_only_token", False):
            raise Forbidden("this API token is read-only")
        raise Forbidden(
            f"this needs the {level} role"
            if level in ROLES
            else "this needs the supervisor permission"
        )
    return None


def init_app(app: Flask) -> None:
    """Check access before every other request hook of the app."""
    app.before_request_funcs.setdefault(None, []).insert(0, enforce_access)
    app.jinja_env.globals.update(
        can=can,
        may=may,
        may_post=may_post,
        VIEWER=VIEWER,
        OPERATOR=OPERATOR,
        ADMIN=ADMIN,
        SUPERVISE=SUPERVISE,
    )

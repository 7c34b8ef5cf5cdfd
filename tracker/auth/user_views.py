"""The users page, for admins: create with a role, change role, disable,
reset a password, delete, and revoke anyone's API tokens."""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy import select

from tracker.audit.trail import record
from tracker.auth.models import ApiToken, User
from tracker.auth.posted_once import posted_again
from tracker.auth.roles import ADMIN, ROLES, blueprint_access
from tracker.auth.tokens import ACTIVE, revoke_token, token_status
from tracker.auth.users import (
    change_role,
    create_user,
    delete_user,
    reset_password,
    set_active,
)
from tracker.extensions import db
from tracker.fields import FieldError

bp = Blueprint("users", __name__)
blueprint_access(bp, read=ADMIN, write=ADMIN)


def _page(status: int = 200, **extra):
    users = db.session.scalars(select(User).order_by(User.username)).all()
    tokens: dict[int, list[ApiToken]] = {}
    for token in db.session.scalars(select(ApiToken).order_by(ApiToken.id.desc())):
        tokens.setdefault(token.user_id, []).append(token)
    admins = [u.id for u in users if u.role == ADMIN and u.active]
    page = render_template(
        "auth/users.html",
        users=users,
        tokens=tokens,
        # The one active admin cannot be demoted, disabled or deleted.
        last_admin=admins[0] if len(admins) == 1 else None,
        roles=ROLES,
        token_status=token_status,
        min_length=current_app.config["PASSWORD_MIN_LENGTH"],
        form=request.form if request.method == "POST" else {},
        **extra,
    )
    return page, status


def _refused(exc: FieldError):
    db.session.rollback()  # nothing of a refused change, flushed or not
    return _page(400, problem=exc)


def _done(message: str):
    db.session.commit()
    flash(message, "info")
    return redirect(url_for("users.index"))


@bp.get("/users")
def index():
    """Every user with role, state and tokens; the form to add one."""
    return _page()


@bp.post("/users")
def create():
    """Add a user with a role and a first password."""
    form = request.form
    try:
        user = create_user(
            db.session,
            form.get("username", "").strip(),
            form.get("password", ""),
            form.get("role") or None,
            current_app.config["PASSWORD_MIN_LENGTH"],
            supervisor=form.get("supervisor") == "on",
            must_change_password=form.get("must_change_password") == "on",
        )
    except FieldError as exc:
        return _refused(exc)
    return _done(_("User %(name)s added.", name=user.username))


@bp.post("/users/<int:user_id>/role")
def set_role(user_id: int):
    """Change a user's role and supervisor permission."""
    user = db.get_or_404(User, user_id)
    try:
        change_role(
            db.session,
            user,
            request.form.get("role", ""),
            request.form.get("supervisor") == "on",
        )
    except FieldError as exc:
        return _refused(exc)
    return _done(_("%(name)s's role is changed.", name=user.username))


@bp.post("/users/<int:user_id>/active")
def set_user_active(user_id: int):
    """Disable a user (their sessions end, their tokens stop) or enable them."""
    user = db.get_or_404(User, user_id)
    if request.form.get("active") not in ("true", "false"):
        return _refused(FieldError("active", "must be true or false"))
    active = request.form.get("active") == "true"
    try:
        set_active(db.session, user, active)
    except FieldError as exc:
        return _refused(exc)
    if active:
        return _done(_("%(name)s is enabled.", name=user.username))
    return _done(_("%(name)s is disabled.", name=user.username))


@bp.post("/users/<int:user_id>/password")
def reset(user_id: int):
    """Give a user a temporary password, shown once, to change at next sign-in."""
    user = db.get_or_404(User, user_id)
    if posted_again():
        flash(
            _(
                "%(name)s has a temporary password already; it is not shown again.",
                name=user.username,
            ),
            "info",
        )
        return redirect(url_for("users.index"))
    password = reset_password(db.session, user)
    record(db.session, "users", "reset_password", "User", user.id, user.username)
    db.session.commit()
    return _page(temporary=(user.username, password))


@bp.post("/users/<int:user_id>/delete")
def delete(user_id: int):
    """Delete a user, with their sessions and tokens."""
    user = db.get_or_404(User, user_id)
    name = user.username
    try:
        delete_user(db.session, user)
    except FieldError as exc:
        return _refused(exc)
    return _done(_("User %(name)s deleted.", name=name))


@bp.post("/users/tokens/<int:token_id>/revoke")
def revoke(token_id: int):
    """Revoke anyone's API token."""
    token = db.get_or_404(ApiToken, token_id)
    if token_status(token) == ACTIVE:
        revoke_token(token)
    return _done(_("The token %(name)s is revoked.", name=token.name or f"#{token.id}"))

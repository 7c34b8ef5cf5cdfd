"""Users, sign-in and API tokens, all through Flask-Login.

Dashboard pages know a user by the session cookie or by a Bearer token; the
API, exempt from CSRF, only by a Bearer token: a cookie never signs an API
request in. A session cookie counts only while the server still holds its
session (see :mod:`tracker.auth.accounts`): signing out ends it for good.
Who may use which view is decided in one place, :mod:`tracker.auth.roles`.
"""

from datetime import timedelta

from flask import (
    Flask,
    current_app,
    flash,
    g,
    redirect,
    request,
    session,
    url_for,
)
from flask_login import current_user

from tracker.api import ApiError
from tracker.errors import wants_json
from tracker.extensions import db, login_manager

# The key, in the signed session cookie, of the server-side session.
SESSION_KEY = "tracker_session"


def session_lifetime(config) -> timedelta:
    return timedelta(days=config["LOGIN_SESSION_DAYS"])


def load_user(user_id: str):
    """Flask-Login's session loader: the signed-in user of a dashboard page."""
    from tracker.auth.accounts import session_user

    if wants_json():
        return None  # the API is exempt from CSRF: cookies must not sign it in
    if not user_id.isdigit() or int(user_id) > 2**31 - 1:
        return None
    return session_user(
        db.session,
        int(user_id),
        session.get(SESSION_KEY),
        session_lifetime(current_app.config),
    )


def unauthorized():
    if wants_json():
        from tracker.auth.tokens import bearer_token

        if bearer_token() is None:
            raise ApiError(401, "Unauthorized", "send Authorization: Bearer <token>")
        raise ApiError(401, "Unauthorized", "the token is unknown, expired or revoked")
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


# Where a user who must choose a new password may still go.
PASSWORD_CHANGE_ENDPOINTS = frozenset(
    {"auth.account", "auth.change_password", "auth.logout", "auth.login", "static"}
)


def require_new_password():
    """Send a user whose password an admin reset to the Account page until
    they choose a new one (API tokens are not held up)."""
    if (
        request.endpoint in PASSWORD_CHANGE_ENDPOINTS
        or request.endpoint is None
        or g.get("token_sign_in")
        or not current_user.is_authenticated
        or not current_user.must_change_password
    ):
        return None
    if wants_json():
        raise ApiError(403, "Forbidden", "choose a new password on the Account page")
    from flask_babel import gettext as _

    flash(_("Choose a new password before going on."), "warning")
    return redirect(url_for("auth.account"))


def init_app(app: Flask) -> None:
    """Wire Flask-Login, register the sign-in and account pages, and prune
    ended sessions in housekeeping."""
    from flask_babel import lazy_gettext as _l

    from tracker.audit.trail import track
    from tracker.auth import oidc_views, roles, user_views
    from tracker.auth.accounts import prune_sessions
    from tracker.auth.models import ApiToken, User
    from tracker.auth.tokens import load_user_from_request
    from tracker.auth.views import bp
    from tracker.housekeeping import add_housekeeping_step
    from tracker.templating import add_navigation

    login_manager.init_app(app)
    login_manager.user_loader(load_user)
    login_manager.request_loader(load_user_from_request)
    login_manager.unauthorized_handler(unauthorized)
    app.register_blueprint(bp)
    app.register_blueprint(user_views.bp)
    app.register_blueprint(oidc_views.bp)
    oidc_views.register_client(app)
    roles.init_app(app)
    app.before_request_funcs[None].insert(1, require_new_password)
    track(
        User,
        "users",
        (
            "username",
            "role",
            "supervisor",
            "active",
            "must_change_password",
            "oidc_subject",
        ),
    )
    track(ApiToken, "users", ("user_id", "name", "expires", "revoked", "read_only"))
    add_navigation(app, "users.index", _l("Users"), 990)
    add_navigation(app, "auth.account", _l("Account"), 1000)
    add_housekeeping_step(
        app,
        "pruned_sessions",
        lambda db_session, config: prune_sessions(db_session, session_lifetime(config)),
    )

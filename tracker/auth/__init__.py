"""Users, sign-in and API tokens, all through Flask-Login.

Dashboard pages know a user by the session cookie or by a Bearer token; the
API, exempt from CSRF, only by a Bearer token: a cookie never signs an API
request in. Views require a user with ``login_required`` (API) or
``login_required_blueprint`` (every page of a dashboard blueprint).
"""

from flask import Blueprint, Flask, redirect, request, url_for
from flask_login import login_required

from tracker.api import ApiError
from tracker.errors import wants_json
from tracker.extensions import db, login_manager


def load_user(user_id: str):
    """Flask-Login's session loader: the signed-in user of a dashboard page."""
    from tracker.auth.models import User

    if wants_json():
        return None  # the API is exempt from CSRF: cookies must not sign it in
    user = db.session.get(User, int(user_id)) if user_id.isdigit() else None
    return user if user is not None and user.active else None


def unauthorized():
    if wants_json():
        from tracker.auth.tokens import bearer_token

        if bearer_token() is None:
            raise ApiError(401, "Unauthorized", "send Authorization: Bearer <token>")
        raise ApiError(401, "Unauthorized", "the token is unknown or revoked")
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


@login_required
def _require_sign_in() -> None:
    """Let only a signed-in user through; everyone else goes to sign in."""


def login_required_blueprint(bp: Blueprint) -> None:
    """Require a signed-in user on every view of ``bp``."""
    bp.before_request(_require_sign_in)


def init_app(app: Flask) -> None:
    """Wire Flask-Login and register the sign-in pages."""
    from tracker.auth.tokens import load_user_from_request
    from tracker.auth.views import bp

    login_manager.init_app(app)
    login_manager.user_loader(load_user)
    login_manager.request_loader(load_user_from_request)
    login_manager.unauthorized_handler(unauthorized)
    app.register_blueprint(bp)

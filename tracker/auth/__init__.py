"""Users, sign-in and API tokens."""

from flask import Flask, redirect, request, url_for

from tracker.api import ApiError
from tracker.errors import wants_json
from tracker.extensions import db, login_manager


def load_user(user_id: str):
    from tracker.auth.models import User

    user = db.session.get(User, int(user_id)) if user_id.isdigit() else None
    return user if user is not None and user.active else None


def unauthorized():
    if wants_json():
        raise ApiError(401, "Unauthorized", "sign in or send a Bearer token")
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def init_app(app: Flask) -> None:
    """Wire Flask-Login and register the sign-in pages."""
    from tracker.auth.tokens import load_user_from_request
    from tracker.auth.views import bp

    login_manager.init_app(app)
    login_manager.user_loader(load_user)
    login_manager.request_loader(load_user_from_request)
    login_manager.unauthorized_handler(unauthorized)
    app.register_blueprint(bp)

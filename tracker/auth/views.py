"""Sign-in and sign-out pages."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select

from tracker.auth.forms import LoginForm
from tracker.auth.models import User
from tracker.extensions import db

bp = Blueprint("auth", __name__)


def safe_next(target: str | None) -> str | None:
    """Return ``target`` only if it is a path on this site."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ch in target for ch in "\\\r\n\t"):
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign a user in with user name and password."""
    if current_user.is_authenticated:
        return redirect(
            safe_next(request.args.get("next")) or url_for("instances.index")
        )
    form = LoginForm()
    if form.validate_on_submit():
        user = db.session.scalar(
            select(User).where(User.username == form.username.data)
        )
        if user is not None and user.active and user.check_password(form.password.data):
            login_user(user)
            return redirect(
                safe_next(request.args.get("next")) or url_for("instances.index")
            )
        flash(_("Wrong user name or password."), "error")
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
@login_required
def logout():
    """Sign the current user out."""
    logout_user()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"))

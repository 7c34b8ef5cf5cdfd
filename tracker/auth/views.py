"""Sign-in, sign-out and one's own account: password and API tokens."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select

from tracker.audit.trail import record
from tracker.auth import SESSION_KEY
from tracker.auth.accounts import (
    USERNAME_MAX_LENGTH,
    authenticate,
    end_session,
    end_sessions,
    password_problem,
    start_session,
)
from tracker.auth.forms import ChangePasswordForm, LoginForm
from tracker.auth.models import ApiToken
from tracker.auth.posted_once import posted_again
from tracker.auth.roles import PUBLIC, VIEWER, access, blueprint_access
from tracker.auth.tokens import ACTIVE, issue_token, revoke_token, token_status
from tracker.extensions import db, limiter

bp = Blueprint("auth", __name__)
# Every signed-in user has an account of their own.
blueprint_access(bp, read=VIEWER, write=VIEWER)
MAX_TOKEN_DAYS = 3650


def safe_next(target: str | None) -> str | None:
    """Return ``target`` only if it is a path on this site."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ch in target for ch in "\\\r\n\t"):
        return None
    return target


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"] or ""


def _login_unlimited() -> bool:
    return current_app.config["LOGIN_RATE_LIMIT"] is None


def _sign_in_failed(_response) -> bool:
    return g.get("sign_in_failed", False)


def _username_key() -> str:
    return "user:" + (request.form.get("username") or "")[:USERNAME_MAX_LENGTH]


def _failed_sign_ins(key_func):
    """Allow LOGIN_RATE_LIMIT failed sign-ins per ``key_func``, then 429."""
    return limiter.limit(
        _login_limit,
        key_func=key_func,
        methods=["POST"],
        exempt_when=_login_unlimited,
        deduct_when=_sign_in_failed,
    )


@bp.route("/login", methods=["GET", "POST"])
@access(PUBLIC)
@_failed_sign_ins(get_remote_address)
@_failed_sign_ins(_username_key)
def login():
    """Sign a user in with user name and password."""
    if current_user.is_authenticated:
        return redirect(
            safe_next(request.args.get("next")) or url_for("instances.index")
        )
    form = LoginForm()
    passwords = current_app.config["OIDC_ALLOW_PASSWORDS"]
    if passwords and form.validate_on_submit():
        user = authenticate(
            db.session,
            form.username.data,
            form.password.data,
            current_app.config["PASSWORD_HASH_METHOD"],
        )
        if user is not None:
            session[SESSION_KEY] = start_session(db.session, user)
            db.session.commit()
            login_user(user)
            return redirect(
                safe_next(request.args.get("next")) or url_for("instances.index")
            )
    if request.method == "POST" and not passwords:
        flash(_("Signing in with a password is off here."), "error")
        return _login_page(form, 403)
    if request.method == "POST":
        g.sign_in_failed = True
        flash(_("Wrong user name or password."), "error")
    return _login_page(form)


def _login_page(form: LoginForm, status: int = 200):
    from tracker.auth.oidc_views import sso_enabled

    page = render_template(
        "auth/login.html",
        form=form,
        passwords=current_app.config["OIDC_ALLOW_PASSWORDS"],
        sso_provider=current_app.config["OIDC_PROVIDER_NAME"]
        if sso_enabled()
        else None,
        next_path=safe_next(request.args.get("next")),
    )
    return page, status


@bp.post("/logout")
def logout():
    """Sign the current user out, ending the session on the server too."""
    end_session(db.session, session.pop(SESSION_KEY, None))
    db.session.commit()
    logout_user()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"))


def _own_tokens() -> list[ApiToken]:
    return list(
        db.session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == current_user.id)
            .order_by(ApiToken.created.desc(), ApiToken.id.desc())
        )
    )


def _account_page(password_form: ChangePasswordForm, status: int = 200, **extra):
    page = render_template(
        "auth/account.html",
        password_form=password_form,
        max_token_days=MAX_TOKEN_DAYS,
        **extra,
        tokens=_own_tokens(),
        token_status=token_status,
        min_length=current_app.config["PASSWORD_MIN_LENGTH"],
    )
    return page, status


@bp.get("/account")
def account():
    """Show one's own account: change the password, list and revoke tokens."""
    return _account_page(ChangePasswordForm())


@bp.post("/account/password")
def change_password():
    """Change one's own password; one's other sessions end."""
    form = ChangePasswordForm()
    if not form.validate_on_submit():
        return _account_page(form, 400)
    if not current_user.check_password(form.current_password.data):
        form.current_password.errors.append(_("The current password is wrong."))
        return _account_page(form, 400)
    if form.new_password.data == form.current_password.data:
        form.new_password.errors.append(
            _("The new password must differ from the current one.")
        )
        return _account_page(form, 400)
    min_length = current_app.config["PASSWORD_MIN_LENGTH"]
    if password_problem(form.new_password.data, min_length) is not None:
        form.new_password.errors.append(
            _(
                "The new password must have at least %(count)d characters.",
                count=min_length,
            )
        )
        return _account_page(form, 400)
    current_user.set_password(form.new_password.data)
    current_user.must_change_password = False
    end_sessions(db.session, current_user, keep=session.get(SESSION_KEY))
    record(db.session, "users", "change_password", "User", current_user.id)
    db.session.commit()
    flash(_("Your password is changed; your other sessions are signed out."), "info")
    return redirect(url_for("auth.account"))


@bp.post("/account/tokens/<int:token_id>/revoke")
def revoke(token_id: int):
    """Revoke one of one's own API tokens."""
    # CSRFProtect has checked the form's token; someone else's token is a 404.
    token = db.one_or_404(
        select(ApiToken).where(
            ApiToken.id == token_id, ApiToken.user_id == current_user.id
        )
    )
    if token_status(token) == ACTIVE:
        revoke_token(token)
        db.session.commit()
    flash(
        _("The token %(name)s is revoked.", name=token.name or f"#{token.id}"), "info"
    )
    return redirect(url_for("auth.account"))


@bp.post("/account/tokens")
def new_token():
    """Issue an API token of one's own, shown once; it may be read-only."""
    name = (request.form.get("name") or "").strip()[:80]
    raw_days = (request.form.get("days") or "").strip()
    if not (raw_days.isascii() and raw_days.isdigit()) or not (
        1 <= int(raw_days) <= MAX_TOKEN_DAYS
    ):
        flash(
            _(
                "Days valid: a whole number from 1 to %(most)d.",
                most=MAX_TOKEN_DAYS,
            ),
            "error",
        )
        return _account_page(ChangePasswordForm(formdata=None), 400)
    if posted_again():
        flash(_("This token was issued already; its value is not shown again."), "info")
        return redirect(url_for("auth.account"))
    # A read-only user's token cannot do more than its user anyway.
    read_only = request.form.get("read_only") == "on"
    token = issue_token(db.session, current_user, name, int(raw_days), read_only)
    db.session.commit()
    return _account_page(ChangePasswordForm(formdata=None), new_token=token)

"""Single sign-on with OpenID Connect through Authlib's Flask client: the
sign-in page's button sends the browser to the provider (authorization code
flow with PKCE and a nonce), and the provider's callback signs the user in.

Authlib fetches the provider's metadata from its discovery document and
checks the ID token's signature against the provider's JWKS, its issuer,
audience, expiry and nonce; the state ties the callback to the browser that
started the sign-in. Both routes are 404 while single sign-on is off.
"""

from __future__ import annotations

import requests
from authlib.integrations.flask_client import OAuth, OAuthError
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_user
from joserfc.errors import JoseError
from sqlalchemy.exc import IntegrityError

from tracker.audit.trail import set_actor
from tracker.auth import SESSION_KEY
from tracker.auth.accounts import end_session, start_session
from tracker.auth.oidc import RoleRules, SignInRefused, claim_values, sso_user
from tracker.auth.roles import PUBLIC, access
from tracker.auth.views import safe_next
from tracker.extensions import db

bp = Blueprint("oidc", __name__)
OAUTH_EXTENSION = "authlib.integrations.flask_client"
CLIENT_NAME = "oidc"
NEXT_KEY = "oidc_next"
# What an answer of the provider that cannot be trusted raises in Authlib.
UNVERIFIED = (OAuthError, JoseError, ValueError, RuntimeError, KeyError, TypeError)


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def register_client(app: Flask) -> None:
    """Give ``app`` its Authlib client of the provider, when OIDC_ISSUER is set."""
    config = app.config
    if config["OIDC_ISSUER"] is None:
        return
    client_kwargs = {
        "scope": config["OIDC_SCOPES"],
        "code_challenge_method": "S256",
        "default_timeout": config["OIDC_TIMEOUT"],
    }
    if config["OIDC_CLIENT_SECRET"] is None:
        # A public client: PKCE alone.
        client_kwargs["token_endpoint_auth_method"] = "none"  # noqa: S105
    # One registry per app: each app may name another provider.
    OAuth(app).register(
        CLIENT_NAME,
        client_id=config["OIDC_CLIENT_ID"],
        client_secret=config["OIDC_CLIENT_SECRET"],
        server_metadata_url=discovery_url(config["OIDC_ISSUER"]),
        client_kwargs=client_kwargs,
    )


def sso_enabled() -> bool:
    return OAUTH_EXTENSION in current_app.extensions


def _client():
    if not sso_enabled():
        abort(404)
    client = current_app.extensions[OAUTH_EXTENSION].create_client(CLIENT_NAME)
    issuer = client.load_server_metadata().get("issuer")
    if issuer != current_app.config["OIDC_ISSUER"]:
        raise ValueError(f"the discovery document names the issuer {issuer!r}")
    return client


def _problem(status: int, message: str):
    return render_template("auth/oidc_problem.html", message=message), status


def _provider() -> str:
    return current_app.config["OIDC_PROVIDER_NAME"]


def _unreachable(exc: Exception):
    current_app.logger.warning("single sign-on: provider unreachable: %s", exc)
    return _problem(
        502, _("%(provider)s cannot be reached. Try again later.", provider=_provider())
    )


def _failed(exc: Exception):
    reason = getattr(exc, "error", None) or type(exc).__name__
    current_app.logger.warning("single sign-on refused: %s: %s", reason, exc)
    return _problem(
        400,
        _(
            "Signing in with %(provider)s did not succeed (%(reason)s). Try "
            "again; if it fails again, tell an administrator.",
            provider=_provider(),
            reason=reason,
        ),
    )


def _refused(refusal: SignInRefused):
    if refusal.reason == SignInRefused.DISABLED:
        message = _("This account is disabled. Ask an administrator.")
    elif refusal.reason == SignInRefused.NO_ROLE:
        message = _(
            "Your %(provider)s account gives you no role here. Ask an "
            "administrator for access.",
            provider=_provider(),
        )
    else:
        message = _("%(provider)s did not say who you are.", provider=_provider())
    return _problem(403, message)


@bp.get("/login/oidc")
@access(PUBLIC)
def login():
    """Send the browser to the provider to sign in."""
    target = safe_next(request.args.get("next"))
    if current_user.is_authenticated and sso_enabled():
        return redirect(target or url_for("instances.index"))
    try:
        client = _client()
        session[NEXT_KEY] = target
        return client.authorize_redirect(url_for("oidc.callback", _external=True))
    except requests.RequestException as exc:
        return _unreachable(exc)
    except UNVERIFIED as exc:
        return _failed(exc)


def _verified_claims(client) -> dict:
    """The ID token's claims (checked by Authlib), completed by userinfo
    when the token lacks the role claim or a name."""
    config = current_app.config
    token = client.authorize_access_token(
        claims_options={
            "iss": {"essential": True, "value": config["OIDC_ISSUER"]},
            "aud": {"essential": True, "value": config["OIDC_CLIENT_ID"]},
        }
    )
    if not token.get("userinfo"):
        raise ValueError("the token answer has no ID token")
    claims = dict(token["userinfo"])
    named = claims.get("preferred_username") or claims.get("email")
    if (
        not claim_values(claims, config["OIDC_ROLE_CLAIM"]) or not named
    ) and client.load_server_metadata().get("userinfo_endpoint"):
        more = client.userinfo(token=token)
        if more.get("sub") != claims.get("sub"):
            raise ValueError("userinfo names another subject")
        claims = {**more, **claims}
    return claims


def _start_session(claims: dict, rules: RoleRules):
    user = sso_user(db.session, claims, rules)
    set_actor(db.session, user.id, user.username, "sso")
    end_session(db.session, session.get(SESSION_KEY))  # whoever was signed in
    key = start_session(db.session, user)
    db.session.commit()
    return user, key


@bp.get("/login/oidc/callback")
@access(PUBLIC)
def callback():
    """Sign in the user the provider sends back: created at the first sign-in,
    with the role their claims give at every one."""
    target = safe_next(session.pop(NEXT_KEY, None))
    try:
        claims = _verified_claims(_client())
    except requests.RequestException as exc:
        return _unreachable(exc)
    except UNVERIFIED as exc:
        return _failed(exc)
    config = current_app.config
    rules = RoleRules(
        config["OIDC_ROLE_CLAIM"], config["OIDC_ROLE_MAP"], config["OIDC_DEFAULT_ROLE"]
    )
    try:
        try:
            user, key = _start_session(claims, rules)
        except IntegrityError:
            # The same user (or name) signed in at the same moment: their row
            # is there now.
            db.session.rollback()
            user, key = _start_session(claims, rules)
    except SignInRefused as refusal:
        db.session.commit()  # a user left without a role is signed out
        return _refused(refusal)
    session[SESSION_KEY] = key
    login_user(user)
    return redirect(target or url_for("instances.index"))

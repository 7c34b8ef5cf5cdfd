"""A small OpenID provider for tests, served on loopback: discovery, JWKS, an
authorization endpoint that signs the configured user in at once, a token
endpoint that checks the client and PKCE and issues RS256-signed ID tokens,
and userinfo. It can misbehave on purpose (a forged or expired token, another
nonce or audience), and it remembers what it was asked."""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from flask import Flask, abort, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from tests.support import serve

CLIENT_ID = "tracker"
CLIENT_SECRET = "provider-side secret"
KEY_ID = "test-key-1"
ID_TOKEN_SECONDS = 300


@functools.cache
def signing_key(name: str = "provider") -> RSAKey:
    """An RSA key per name, made once per run; every key has the same id, so a
    token signed with another one looks like the provider's."""
    return RSAKey.generate_key(
        2048, parameters={"kid": KEY_ID, "use": "sig", "alg": "RS256"}
    )


@dataclass
class Provider:
    """What the provider says about the user who signs in next."""

    issuer: str = ""
    client_id: str = CLIENT_ID
    # None: a public client, known by its id alone (PKCE still required).
    client_secret: str | None = CLIENT_SECRET
    # The claims of the user who signs in (in the ID token and userinfo).
    claims: dict[str, Any] = field(
        default_factory=lambda: {
            "sub": "248289761001",
            "preferred_username": "grace",
            "email": "grace@example.org",
            "groups": ["staff"],
        }
    )
    # Claims only userinfo tells (the ID token leaves them out).
    userinfo_only: tuple[str, ...] = ()
    # Claims replaced in the ID token: {"exp": ...}, {"nonce": ...}, {"aud": ...}.
    id_token_overrides: dict[str, Any] = field(default_factory=dict)
    # Sign the ID token with a key that is not in the JWKS.
    forge: bool = False
    # Answer the authorization request with this error instead of a code.
    deny: str | None = None
    # What it was asked: the authorization requests' and token requests' form.
    authorizations: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    _codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    _access_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)

    def id_token(self, claims: dict[str, Any], nonce: str) -> str:
        now = int(time.time())
        payload = {
            key: value for key, value in claims.items() if key not in self.userinfo_only
        }
        payload.update(
            iss=self.issuer,
            aud=self.client_id,
            iat=now,
            exp=now + ID_TOKEN_SECONDS,
            nonce=nonce,
        )
        payload.update(self.id_token_overrides)
        key = signing_key("forger" if self.forge else "provider")
        return jwt.encode({"alg": "RS256", "kid": KEY_ID}, payload, key)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _client_known(provider: Provider) -> bool:
    form = request.form
    if provider.client_secret is None:
        return form.get("client_id") == provider.client_id
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        return (auth.username, auth.password) == (
            provider.client_id,
            provider.client_secret,
        )
    return (form.get("client_id"), form.get("client_secret")) == (
        provider.client_id,
        provider.client_secret,
    )


def provider_app(provider: Provider) -> Flask:
    """The provider's HTTP endpoints."""
    app = Flask("openid_provider")

    @app.get("/.well-known/openid-configuration")
    def discovery():
        base = provider.issuer
        return jsonify(
            issuer=base,
            authorization_endpoint=f"{base}/authorize",
            token_endpoint=f"{base}/token",
            userinfo_endpoint=f"{base}/userinfo",
            jwks_uri=f"{base}/jwks",
            response_types_supported=["code"],
            subject_types_supported=["public"],
            id_token_signing_alg_values_supported=["RS256"],
            code_challenge_methods_supported=["S256"],
            token_endpoint_auth_methods_supported=[
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
        )

    @app.get("/jwks")
    def jwks():
        return jsonify(KeySet([signing_key("provider")]).as_dict(private=False))

    @app.get("/authorize")
    def authorize():
        asked = request.args.to_dict()
        provider.authorizations.append(asked)
        if (
            asked.get("client_id") != provider.client_id
            or asked.get("response_type") != "code"
            or "openid" not in asked.get("scope", "").split()
            or asked.get("code_challenge_method") != "S256"
            or not asked.get("code_challenge")
            or not asked.get("nonce")
            or not asked.get("redirect_uri")
        ):
            abort(400)
        back = {"state": asked.get("state", "")}
        if provider.deny:
            back["error"] = provider.deny
        else:
            code = secrets.token_urlsafe(16)
            provider._codes[code] = {
                "claims": dict(provider.claims),
                "nonce": asked["nonce"],
                "challenge": asked["code_challenge"],
                "redirect_uri": asked["redirect_uri"],
            }
            back["code"] = code
        return redirect(f"{asked['redirect_uri']}?{urlencode(back)}")

    @app.post("/token")
    def token():
        form = request.form.to_dict()
        provider.token_requests.append(form)
        if not _client_known(provider):
            return jsonify(error="invalid_client"), 401
        grant = provider._codes.pop(form.get("code", ""), None)  # used once
        if (
            form.get("grant_type") != "authorization_code"
            or grant is None
            or form.get("redirect_uri") != grant["redirect_uri"]
            or _s256(form.get("code_verifier", "")) != grant["challenge"]
        ):
            return jsonify(error="invalid_grant"), 400
        access_token = secrets.token_urlsafe(24)
        provider._access_tokens[access_token] = grant["claims"]
        return jsonify(
            access_token=access_token,
            token_type="Bearer",
            expires_in=ID_TOKEN_SECONDS,
            id_token=provider.id_token(grant["claims"], grant["nonce"]),
        )

    @app.get("/userinfo")
    def userinfo():
        auth = request.headers.get("Authorization", "")
        claims = provider._access_tokens.get(auth.removeprefix("Bearer "))
        if not auth.startswith("Bearer ") or claims is None:
            abort(401)
        return jsonify(claims)

    return app


@contextmanager
def running_provider(host: str = "127.0.0.1") -> Iterator[Provider]:
    """A provider served on loopback; its issuer is its URL."""
    provider = Provider()
    with serve(provider_app(provider), host) as url:
        provider.issuer = url
        yield provider


def sso_settings(provider: Provider, **extra) -> dict[str, Any]:
    """The tracker's settings for single sign-on through ``provider``."""
    return {
        "OIDC_ISSUER": provider.issuer,
        "OIDC_CLIENT_ID": provider.client_id,
        "OIDC_CLIENT_SECRET": provider.client_secret,
        "OIDC_PROVIDER_NAME": "Test ID",
        "OIDC_ROLE_MAP": {
            "tracker-admins": "admin",
            "field-supervisors": "supervisor",
            "operations": "operator",
            "staff": "viewer",
        },
        **extra,
    }


def at_provider(location: str) -> str:
    """Follow the tracker's redirect to the provider as a browser would;
    return the path (and query) of the callback the provider sends it back to."""
    answer = requests.get(location, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    return f"{back.path}?{back.query}"


def start_sso(client, next_path: str | None = None):
    """Press the sign-in page's single sign-on button; return the answer."""
    query = f"?{urlencode({'next': next_path})}" if next_path else ""
    return client.get(f"/login/oidc{query}")


def sso_sign_in(client, next_path: str | None = None):
    """Sign ``client`` in through the provider; return the callback's answer."""
    started = start_sso(client, next_path)
    assert started.status_code == 302, started.get_data(as_text=True)
    return client.get(at_provider(started.headers["Location"]))

"""Browser hardening: the policy headers on every answer, the session cookie's
flags, and templates with no inline script for the policy to refuse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tracker.security import CONTENT_SECURITY_POLICY

ROOT = Path(__file__).resolve().parents[1]
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>")
EVENT_ATTRIBUTE = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)


@pytest.mark.parametrize(
    "path", ["/login", "/api/openapi.json", "/api/instance/nope", "/static/tracker.css"]
)
def test_every_answer_carries_the_hardening_headers(client, path):
    response = client.get(path)
    response.close()
    headers = response.headers
    policy = headers["Content-Security-Policy"]
    assert policy == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"


def test_the_session_cookie_is_httponly_and_samesite_lax(client, user, login):
    login()
    cookie = client.get_cookie("session")
    assert cookie.http_only
    assert cookie.same_site == "Lax"
    assert not cookie.secure


def test_session_cookie_secure_makes_it_secure(make_app, user):
    from tests.support import Login

    client = make_app(SESSION_COOKIE_SECURE=True).test_client()
    Login(client)()
    cookie = client.get_cookie("session")
    assert cookie.secure and cookie.http_only and cookie.same_site == "Lax"


def test_a_chosen_samesite_is_kept(make_app):
    app = make_app(SESSION_COOKIE_SAMESITE="Strict")
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Strict"


def test_no_template_has_an_inline_script_or_event_attribute():
    templates = [
        path
        for package in ("tracker", "quota", "sync", "allocation")
        for path in (ROOT / package).rglob("templates/**/*.html")
    ]
    assert len(templates) > 10
    for path in templates:
        text = path.read_text()
        assert not INLINE_SCRIPT.search(text), path
        assert not EVENT_ATTRIBUTE.search(text), path

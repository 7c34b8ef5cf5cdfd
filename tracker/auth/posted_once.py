"""Forms whose answer shows a secret once (a new token, a temporary password):
a reload re-sends the form, and must not issue a second secret. Each such form
carries a random ``once`` value; a value already posted in this session is
refused."""

from __future__ import annotations

import secrets

from flask import request, session

FIELD = "once"
SESSION_KEY = "posted_once"
KEPT = 10


def once_value() -> str:
    """A fresh value for a form's hidden ``once`` field (a template global)."""
    return secrets.token_urlsafe(12)


def posted_again() -> bool:
    """True when this request re-sends a form already posted in this session;
    otherwise remember its value (a form without one is taken as new)."""
    value = (request.form.get(FIELD) or "")[:32]
    if not value:
        return False
    seen = session.get(SESSION_KEY, [])
    if value in seen:
        return True
    session[SESSION_KEY] = [*seen, value][-KEPT:]
    return False

"""Browser hardening: a strict Content-Security-Policy and the headers that go
with it, on every answer."""

from __future__ import annotations

from flask import Flask, Response

# Every script, style, image and font comes from this application itself; no
# inline script runs, and no other site may frame a page.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def add_security_headers(response: Response) -> Response:
    """Set the hardening headers a view did not set itself."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def init_app(app: Flask) -> None:
    # Flask defines these keys (as None or False), so a setdefault would do
    # nothing: fill in what the settings left unset.
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if app.config.get("REMEMBER_COOKIE_SAMESITE") is None:
        app.config["REMEMBER_COOKIE_SAMESITE"] = "Lax"
    # SESSION_COOKIE_SECURE (set it when served over HTTPS) covers both cookies.
    app.config.setdefault(
        "REMEMBER_COOKIE_SECURE", bool(app.config.get("SESSION_COOKIE_SECURE"))
    )
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["REMEMBER_COOKIE_HTTPONLY"] = True
    app.after_request(add_security_headers)

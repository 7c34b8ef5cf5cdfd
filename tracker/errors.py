"""One error handler: JSON for API requests, an HTML page for the rest."""

from __future__ import annotations

import contextlib
import math
import time

from flask import Flask, current_app, jsonify, make_response, render_template, request
from flask_limiter import RateLimitExceeded
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

from tracker.api import ApiError, invalid
from tracker.extensions import db, limiter
from tracker.fields import FieldError

# The original client speaks to ``/instance/`` as well as ``/api/instance/``.
JSON_PATH_PREFIXES = ("/api/", "/instance/")
# Where the API's title differs from Werkzeug's name: the registry's clients
# have always been told of a missing record with "Not found".
JSON_TITLES = {404: "Not found"}


def wants_json() -> bool:
    """True when the request is for the API (JSON errors), not a page."""
    blueprint = request.blueprint or ""
    path = request.path
    return (
        blueprint.endswith("_api")
        or path.startswith(JSON_PATH_PREFIXES)
        or path in ("/api", "/instance")
    )


def error_payload(exc: HTTPException) -> dict:
    if isinstance(exc, ApiError):
        payload = {"error": exc.error, "message": exc.description, **exc.extra}
        if exc.field is not None:
            payload["field"] = exc.field
        return payload
    return {"error": JSON_TITLES.get(exc.code, exc.name), "message": exc.description}


def handle_http_exception(exc: HTTPException):
    if exc.code is None or exc.code < 400:
        return exc  # redirects and the like pass through untouched
    if wants_json():
        response = jsonify(error_payload(exc))
        response.status_code = exc.code
        for name, value in exc.get_headers():
            if name.lower() not in ("content-type", "content-length"):
                response.headers[name] = value
        return response
    return render_template("error.html", error=exc), exc.code


def handle_field_error(exc: FieldError):
    # A value refused by a field rule is the client's mistake: a 400 naming it.
    return handle_http_exception(invalid(exc.field, exc.message))


def handle_unexpected(exc: Exception):
    # Logged with its traceback; the client sees a plain 500 without details.
    current_app.logger.exception(
        "unhandled error on %s %s", request.method, request.endpoint
    )
    return handle_http_exception(InternalServerError())


# How long clients are told to wait when the database cannot be reached.
RETRY_AFTER_SECONDS = 30


def handle_database_unavailable(exc: Exception):
    """The database is down or refuses connections: a 503 to retry, not a 500."""
    current_app.logger.warning(
        "database unavailable on %s %s: %s",
        request.method,
        request.endpoint,
        str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
    )
    # A connection that is gone cannot roll back; the pool replaces it.
    with contextlib.suppress(OperationalError, InterfaceError):
        db.session.rollback()
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    message = "the database cannot be reached; try again shortly"
    if wants_json():
        response = jsonify({"error": "Service unavailable", "message": message})
        return response, 503, headers
    # A page of its own, rendered without the context processors: they would
    # ask the database who is signed in.
    page = current_app.jinja_env.get_template("unavailable.html").render()
    return page, 503, headers


def handle_rate_limited(exc: RateLimitExceeded):
    """A 429 that says when to come back (Retry-After, in seconds)."""
    response = make_response(handle_http_exception(exc))
    breached = limiter.current_limit
    if breached is not None:
        wait = math.ceil(breached.reset_at - time.time())
        response.headers["Retry-After"] = str(max(wait, 1))
    return response


def refuse_nul_in_query() -> None:
    """No database stores a NUL character: a query argument holding one is the
    client's mistake, answered 400 naming it, before any view reads it."""
    if not request.query_string:  # most requests: nothing to parse
        return
    for name, value in request.args.items(multi=True):
        if "\x00" in value or "\x00" in name:
            raise invalid(name.replace("\x00", ""), "must not contain a NUL character")


def register_error_handlers(app: Flask) -> None:
    app.before_request(refuse_nul_in_query)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(RateLimitExceeded, handle_rate_limited)
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(InterfaceError, handle_database_unavailable)
    app.register_error_handler(FieldError, handle_field_error)
    app.register_error_handler(Exception, handle_unexpected)

"""One audit trail of every state-changing action (see :mod:`tracker.audit.trail`),
with a page and an admin API."""

from __future__ import annotations

from flask import Flask, current_app, g, request
from flask_login import current_user

from tracker.audit.trail import current_actor, event_row, given_values, install
from tracker.extensions import db

# Blueprints whose writes belong to another domain's trail.
DOMAIN_OF_BLUEPRINT = {"fleet": "instances", "auth": "users", "openapi": "tracker"}


def domain_of(blueprint: str | None) -> str:
    name = (blueprint or "tracker").removesuffix("_api")
    return DOMAIN_OF_BLUEPRINT.get(name, name)


def record_unaudited_write(response):
    """The request net: a signed-in write that succeeded, wrote to the
    database and recorded nothing of its own is recorded by its route, in a
    transaction of its own (a refusal or a no-op is not an action)."""
    from tracker.auth.roles import PUBLIC, READ_METHODS, required_level

    if (
        request.method in READ_METHODS
        or request.endpoint is None
        or response.status_code >= 400
        or g.get("audited")
        or not g.get("wrote")
        or required_level(current_app, request.endpoint, request.method) == PUBLIC
        or not current_user.is_authenticated
    ):
        return response
    from tracker.audit.trail import EVENTS

    row = event_row(
        current_actor(db.session),
        domain_of(request.blueprint),
        request.endpoint.rpartition(".")[2],
        "route",
        ",".join(f"{k}={v}" for k, v in sorted((request.view_args or {}).items())),
        f"{request.method} {request.path}",
        given_values(g.get("json_body") if request.is_json else request.form),
    )
    try:
        with db.engine.begin() as connection:
            connection.execute(EVENTS.insert(), [row])
    except Exception:  # the answer stands; the missed event is logged
        current_app.logger.exception("could not record %s in the audit trail", row)
    return response


def init_app(app: Flask) -> None:
    from flask_babel import lazy_gettext as _l

    from tracker.audit import api, views
    from tracker.audit.openapi import audit_paths
    from tracker.openapi import add_paths
    from tracker.templating import add_navigation

    install(db.session)
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    app.after_request(record_unaudited_write)
    add_paths(app, audit_paths())
    add_navigation(app, "audit.index", _l("Audit"), 950)

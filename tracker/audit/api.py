"""The audit trail's admin API: ``GET /api/audit`` with the page's filters."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, jsonify, request

from tracker.api import paginated
from tracker.audit.listing import AuditQuery, events_statement, serialize
from tracker.auth.roles import ADMIN, blueprint_access

bp = Blueprint("audit_api", __name__)
blueprint_access(bp, read=ADMIN, write=ADMIN)


@bp.get("/api/audit")
def events():
    """List audit events, newest first: filters user, domain, action,
    target_type, target_id, since, until (days in the dashboard's time zone)."""
    config = current_app.config
    query = AuditQuery.from_args(request.args, strict=True)
    statement = events_statement(query, ZoneInfo(config["BABEL_DEFAULT_TIMEZONE"]))
    return jsonify(
        paginated(
            statement, serialize, config["API_PAGE_SIZE"], config["API_MAX_PAGE_SIZE"]
        )
    )

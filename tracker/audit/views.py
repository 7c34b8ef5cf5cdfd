"""The audit trail page, for admins."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, render_template, request
from sqlalchemy import select

from tracker.api import page_within
from tracker.audit.listing import AuditQuery, events_statement
from tracker.audit.models import AuditEvent
from tracker.auth.roles import ADMIN, blueprint_access
from tracker.extensions import db

bp = Blueprint("audit", __name__)
blueprint_access(bp, read=ADMIN, write=ADMIN)


def _distinct(column) -> list[str]:
    return db.session.scalars(select(column).group_by(column).order_by(column)).all()


@bp.get("/audit")
def index():
    """Every state-changing action, newest first, with filters."""
    query = AuditQuery.from_args(request.args)
    zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    pagination = page_within(
        events_statement(query, zone), current_app.config["DASHBOARD_PAGE_SIZE"]
    )
    return render_template(
        "audit/index.html",
        events=pagination.items,
        pagination=pagination,
        query=query,
        domains=_distinct(AuditEvent.domain),
        actors=_distinct(AuditEvent.actor),
    )

"""The audit trail page, for admins."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, flash, render_template, request
from flask_babel import gettext as _
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
    for name, label in (("since", _("From")), ("until", _("To"))):
        typed = request.args.get(name)
        if typed and getattr(query, name) is None:
            flash(
                _(
                    "%(field)s: %(typed)s is not a date (YYYY-MM-DD); left out.",
                    field=label,
                    typed=typed[:40],
                ),
                "warning",
            )
    if query.since and query.until and query.since > query.until:
        flash(_("From is after To: no day is in between."), "warning")
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

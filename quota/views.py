"""The quota page: progress, clients, history, override approval, pull now."""

from __future__ import annotations

from datetime import timedelta

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from quota.controller import HttpTransport, assumed_ceiling, committed_total
from quota.models import ControllerQuota, QuotaHistory
from quota.overrides import OverrideRefused, approve
from quota.pulls import run_pull
from tracker.auth import login_required_blueprint
from tracker.db_types import utcnow
from tracker.extensions import db

bp = Blueprint("quota", __name__, template_folder="templates")
login_required_blueprint(bp)
HISTORY_ROWS = 30


@bp.get("/quotas")
def index():
    """Show every quota with its clients, history and overrides to approve."""
    return _render_index()


def _render_index(approval: str | None = None, entered: dict | None = None):
    quotas = db.session.scalars(
        select(ControllerQuota).order_by(ControllerQuota.id)
    ).all()
    rows = []
    for quota in quotas:
        history = db.session.scalars(
            select(QuotaHistory)
            .where(QuotaHistory.quota_id == quota.id)
            .order_by(QuotaHistory.id.desc())
            .limit(HISTORY_ROWS)
        ).all()
        rows.append(
            {
                "quota": quota,
                "created": sum(c.count for c in quota.clients),
                "assigned": committed_total(db.session, quota),
                "clients": [(c, assumed_ceiling(db.session, c)) for c in quota.clients],
                "history": history,
            }
        )
    return render_template(
        "quota/index.html",
        rows=rows,
        approval=approval,
        entered=entered or {},
    )


@bp.post("/quotas/<int:quota_id>/pull")
def pull(quota_id: int):
    """Pull one quota now."""
    quota = db.get_or_404(ControllerQuota, quota_id)
    transport = HttpTransport(current_app.config["QUOTA_CLIENT_TIMEOUT"])
    _operation, summary = run_pull(
        db.session, quota, transport, db.session.commit, current_user.id
    )
    if summary is None:
        flash(_("The quota was not pulled: see Background jobs."), "error")
    else:
        flash(
            _(
                "Pulled: %(reached)d reached, %(unreachable)d unreachable.",
                reached=summary.reached,
                unreachable=summary.unreachable,
            ),
            "warning" if summary.unreachable else "success",
        )
    return redirect(url_for("quota.index"))


@bp.post("/quotas/<int:quota_id>/approve")
def approve_override(quota_id: int):
    """Turn a client's request code into an approval code."""
    quota = db.get_or_404(ControllerQuota, quota_id)
    extra = request.form.get("extra", type=int)
    # A refused request is shown again as it was typed.
    entered = {
        "quota_id": quota.id,
        "request_code": request.form.get("request_code", "")[:500],
        "extra": request.form.get("extra", "")[:20],
    }
    if extra is None or extra < 1:
        flash(_("Extra records: a whole number above zero."), "error")
        return _render_index(entered=entered), 400
    hours = current_app.config["QUOTA_OVERRIDE_HOURS"]
    try:
        code = approve(
            db.session,
            quota,
            request.form.get("request_code", ""),
            extra,
            utcnow(),
            timedelta(hours=hours),
            current_user.id,
        )
    except OverrideRefused as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return _render_index(entered=entered), 400
    db.session.commit()
    # Rendered, not redirected: the code is a credential and stays out of URLs.
    return _render_index(approval=code)

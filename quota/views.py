"""The quota page: progress, forecast, clients, administration, history,
override approval, pull now."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import (
    Blueprint,
    abort,
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

from quota.admin import (
    AdminRefused,
    add_client,
    commitments,
    remove_client,
    update_client,
    update_quota,
)
from quota.controller import (
    HttpTransport,
    Policy,
    assumed_ceiling,
    outstanding_by_client,
)
from quota.forecast import client_forecast, quota_forecast
from quota.models import ControllerQuota, QuotaClient, QuotaHistory
from quota.overrides import OverrideRefused, approve_request
from quota.pulls import run_pull
from tracker.auth.roles import (
    ADMIN,
    OPERATOR,
    SUPERVISE,
    VIEWER,
    access,
    blueprint_access,
)
from tracker.db_types import utcnow
from tracker.extensions import db

bp = Blueprint("quota", __name__, template_folder="templates")
blueprint_access(bp, read=VIEWER, write=ADMIN)
HISTORY_ROWS = 30


@bp.get("/quotas")
def index():
    """Show every quota with its clients, forecast, history and forms."""
    return _render_index()


def _render_index(approval: str | None = None, entered: dict | None = None):
    quotas = db.session.scalars(
        select(ControllerQuota).order_by(ControllerQuota.id)
    ).all()
    now = utcnow()
    max_skew = current_app.config["QUOTA_MAX_CLOCK_SKEW"]
    rows = []
    for quota in quotas:
        history = db.session.scalars(
            select(QuotaHistory)
            .where(QuotaHistory.quota_id == quota.id)
            .order_by(QuotaHistory.id.desc())
            .limit(HISTORY_ROWS)
        ).all()
        outstanding = outstanding_by_client(db.session, quota)
        clients = []
        for client in quota.clients:
            may = assumed_ceiling(db.session, client, outstanding.get(client.id, 0))
            skew = client.clock_skew
            clients.append(
                {
                    "client": client,
                    "may": may,
                    "forecast": client_forecast(client, may, now, quota.window_expires),
                    "clock_off": skew is not None and abs(skew) > max_skew,
                }
            )
        rows.append(
            {
                "quota": quota,
                "numbers": commitments(db.session, quota),
                "forecast": quota_forecast(quota, now),
                "clients": clients,
                "history": history,
            }
        )
    return render_template(
        "quota/index.html",
        rows=rows,
        approval=approval,
        entered=entered or {},
    )


def _back():
    return redirect(url_for("quota.index"))


def _refused(exc: Exception):
    db.session.rollback()
    flash(str(exc), "error")
    return _back()


def _moment(name: str) -> datetime | None:
    """A date or date-and-time field of the form, taken as UTC."""
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    moment = datetime.fromisoformat(raw)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _client_of(quota: ControllerQuota, client_id: int) -> QuotaClient:
    client = db.get_or_404(QuotaClient, client_id)
    if client.quota_id != quota.id:
        abort(404)
    return client


@bp.post("/quotas/<int:quota_id>/pull")
@access(OPERATOR)
def pull(quota_id: int):
    """Pull one quota now."""
    quota = db.get_or_404(ControllerQuota, quota_id)
    with HttpTransport.from_config(current_app.config) as transport:
        _operation, summary = run_pull(
            db.session,
            quota,
            transport,
            db.session.commit,
            current_user.id,
            policy=Policy.from_config(current_app.config),
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
    return _back()


@bp.post("/quotas/<int:quota_id>/update")
def update(quota_id: int):
    """Change a quota's target, window or state."""
    quota = db.get_or_404(ControllerQuota, quota_id)
    target = request.form.get("target", type=int)
    if target is None or target < 1:
        flash(_("Target: a whole number above zero."), "error")
        return _back()
    try:
        start, expires = _moment("window_start"), _moment("window_expires")
    except ValueError:
        flash(_("Window: dates such as 2027-01-31."), "error")
        return _back()
    try:
        changes = update_quota(
            db.session,
            quota,
            target,
            start,
            expires,
            request.form.get("active") == "on",
            actor=current_user.username,
        )
    except AdminRefused as exc:
        return _refused(exc)
    db.session.commit()
    flash("; ".join(changes) if changes else _("Nothing changed."), "info")
    return _back()


@bp.post("/quotas/<int:quota_id>/clients")
def add(quota_id: int):
    """Add a field client to a quota."""
    quota = db.get_or_404(ControllerQuota, quota_id)
    name = request.form.get("name", "").strip()
    endpoint = request.form.get("endpoint", "").strip()
    try:
        add_client(
            db.session,
            quota,
            name,
            endpoint,
            request.form.get("secret", ""),
            current_user.username,
        )
    except AdminRefused as exc:
        db.session.rollback()
        labels = {
            "name": _("Name"),
            "endpoint": _("Address"),
            "secret": _("Client secret"),
        }
        for field, message in exc.problems.items():
            flash(f"{labels.get(field, field)}: {message}", "error")
        # Shown again as typed (the secret is typed again: it is never echoed).
        entered = {"quota_id": quota.id, "name": name[:100], "endpoint": endpoint}
        return _render_index(entered=entered), 400
    db.session.commit()
    flash(_("Client added: it gets headroom at the next pull."), "info")
    return _back()


@bp.post("/quotas/<int:quota_id>/clients/<int:client_id>")
def change_client(quota_id: int, client_id: int):
    """Change a client's weight, maximum ceiling or state."""
    quota = db.get_or_404(ControllerQuota, quota_id)
    client = _client_of(quota, client_id)
    weight = request.form.get("weight", type=float)
    raw_max = request.form.get("max_ceiling", "").strip()
    if weight is None or (raw_max and not raw_max.isdigit()):
        flash(_("Weight: a number; maximum: a whole number or empty."), "error")
        return _back()
    try:
        changes = update_client(
            db.session,
            quota,
            client,
            weight,
            int(raw_max) if raw_max else None,
            request.form.get("active") == "on",
            current_user.username,
        )
    except AdminRefused as exc:
        return _refused(exc)
    db.session.commit()
    flash(
        f"{client.name}: " + ("; ".join(changes) if changes else _("nothing changed")),
        "info",
    )
    return _back()


@bp.post("/quotas/<int:quota_id>/clients/<int:client_id>/remove")
def remove(quota_id: int, client_id: int):
    """Remove a client; what it may still create stays counted."""
    quota = db.get_or_404(ControllerQuota, quota_id)
    client = _client_of(quota, client_id)
    name = client.name
    held = remove_client(db.session, quota, client, current_user.username)
    db.session.commit()
    flash(
        _(
            "Removed %(name)s: its %(held)d records stay counted against the target.",
            name=name,
            held=held,
        ),
        "info",
    )
    return _back()


@bp.post("/quotas/<int:quota_id>/approve")
@access(SUPERVISE)
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
    try:
        approved = approve_request(
            db.session,
            quota,
            request.form.get("request_code", ""),
            extra,
            current_app.config,
            db.session.commit,
            current_user.id,
            current_user.username,
            reclaim=request.form.get("reclaim") == "on",
        )
    except OverrideRefused as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return _render_index(entered=entered), 400
    db.session.commit()
    if approved.warning:
        flash(approved.warning, "error")
    # Rendered, not redirected: the code is a credential and stays out of URLs.
    return _render_index(approval=approved.code)

"""Dashboard actions of fleet health: an instance's expected contact, tags and
maintenance pause, an organisation's expected contact; the list's live rows."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    current_app,
    flash,
    jsonify,
    redirect,
    request,
    url_for,
)
from flask_babel import format_datetime
from flask_babel import gettext as _
from sqlalchemy import select

from tracker.auth.roles import OPERATOR, VIEWER, blueprint_access
from tracker.db_types import utcnow
from tracker.extensions import db
from tracker.fields import FieldError
from tracker.instances import admin
from tracker.instances.changes import admin_update_instance
from tracker.instances.fleet import fleet_view, page_states
from tracker.instances.lookup import instance_by_number_or_404
from tracker.instances.models import (
    PAUSE_INSTANCE,
    Instance,
    Pause,
)
from tracker.instances.state_names import HEALTH_NAMES, STATE_NAMES
from tracker.instances.validation import ADMIN_UPDATE, parse_pause, parse_schedule

bp = Blueprint("fleet", __name__)
blueprint_access(bp, read=VIEWER, write=OPERATOR)
HOUR = 3600


def _instance_or_404(number: int) -> Instance:
    return instance_by_number_or_404(number, _("No instance with this number."))


def _back(instance: Instance):
    return redirect(url_for("instances.detail", number=instance.id) + "#health")


def _hours_field(name: str) -> int | None:
    """Hours typed in a form, as whole seconds; empty is "the default" (0)."""
    raw = (request.form.get(name) or "").strip().replace(",", ".")
    if not raw:
        return 0
    try:
        hours = float(raw)
    except ValueError:
        raise FieldError(name, _("must be a number of hours")) from None
    if not 0 <= hours <= 366 * 24:
        raise FieldError(name, _("must be from 0 to 8784 hours"))
    return round(hours * HOUR)


def _schedule_from_form() -> dict:
    return parse_schedule(
        {name: _hours_field(name) for name in ("contact_every", "contact_grace")}
    )


@bp.post("/instances/<int:number>/schedule")
def set_schedule(number: int):
    """Set (or clear) the contact expected of one instance."""
    instance = _instance_or_404(number)
    try:
        schedule = _schedule_from_form()
    except FieldError as exc:
        flash(str(exc), "error")
        return _back(instance)
    admin_update_instance(
        instance,
        {name: schedule.get(name) for name in ("contact_every", "contact_grace")},
    )
    db.session.commit()
    flash(_("Expected contact saved."), "info")
    return _back(instance)


@bp.post("/instances/<int:number>/organisation-schedule")
def set_organisation_schedule(number: int):
    """Set the contact expected of the instance's organisation."""
    instance = _instance_or_404(number)
    try:
        schedule = _schedule_from_form()
    except FieldError as exc:
        flash(str(exc), "error")
        return _back(instance)
    admin.set_organisation_default(db.session, instance.organisation, schedule)
    db.session.commit()
    flash(
        _(
            "Expected contact saved for %(organisation)s.",
            organisation=instance.organisation,
        ),
        "info",
    )
    return _back(instance)


@bp.post("/instances/<int:number>/tags")
def set_tags(number: int):
    """Replace an instance's tags (separated by commas or spaces)."""
    instance = _instance_or_404(number)
    typed = (request.form.get("tags") or "").replace(",", " ").split()
    try:
        tags = ADMIN_UPDATE.clean("tags", typed)
    except FieldError as exc:
        flash(str(exc), "error")
        return _back(instance)
    admin.set_tags(db.session, instance, tags)
    db.session.commit()
    flash(_("Tags saved."), "info")
    return _back(instance)


def _pause_from_form() -> dict:
    """The form's pause; a time typed without a zone is in the configured one."""
    until = (request.form.get("until") or "").strip()
    if until and until[-1] != "Z" and "+" not in until:
        try:
            local = datetime.fromisoformat(until)
        except ValueError:
            raise FieldError("until", _("must be a date and time")) from None
        zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
        until = local.replace(tzinfo=zone).isoformat()
    return parse_pause(
        {"until": until or None, "note": request.form.get("note") or None}
    )


@bp.post("/instances/<int:number>/pause")
def pause(number: int):
    """Pause an instance until a time: no alerts, shown as paused."""
    instance = _instance_or_404(number)
    try:
        fields = _pause_from_form()
    except FieldError as exc:
        flash(str(exc), "error")
        return _back(instance)
    existing = db.session.scalar(
        select(Pause).filter_by(kind=PAUSE_INSTANCE, value=str(instance.id))
    )
    if existing is None:
        existing = Pause(kind=PAUSE_INSTANCE, value=str(instance.id))
        db.session.add(existing)
    existing.until, existing.note = fields["until"], fields["note"]
    instance.state = None  # to be judged again
    db.session.commit()
    flash(_("Paused until %(until)s.", until=format_datetime(fields["until"])), "info")
    return _back(instance)


@bp.post("/instances/<int:number>/resume")
def resume(number: int):
    """End an instance's pause now."""
    instance = _instance_or_404(number)
    existing = db.session.scalar(
        select(Pause).filter_by(kind=PAUSE_INSTANCE, value=str(instance.id))
    )
    if existing is not None:
        db.session.delete(existing)
        instance.state = None  # to be judged again
        db.session.commit()
    flash(_("Pause ended."), "info")
    return _back(instance)


@bp.get("/instances/states.json")
def live_states():
    """The states of the instances with the given numbers, for a page to
    refresh, and the fleet's counts by state."""
    wanted = request.args.getlist("number", type=int)[:500]
    config, now = current_app.config, utcnow()
    instances = db.session.scalars(
        select(Instance).where(Instance.id.in_(wanted))
    ).all()
    states = page_states(db.session, config, instances, now)
    # A disabled instance is not tracked: it has no state to show.
    rows = {
        str(instance.id): {
            "state": state.name,
            "label": str(STATE_NAMES[state.name]),
            "since": format_datetime(state.since) if state.since else "",
            "reason": state.reason,
            "health": instance.health,
            "health_label": str(HEALTH_NAMES[instance.health]),
        }
        for instance in instances
        if (state := states.get(instance.id)) is not None
    }
    counts = fleet_view(db.session, config, now).counts()
    return jsonify(
        {
            "rows": rows,
            "counts": [
                {"state": name, "label": str(STATE_NAMES[name]), "count": count}
                for name, count in counts
            ],
        }
    )

"""The admin API of fleet health: maintenance pauses, organisations' expected
contact, and the fleet as a source of targets for Prometheus."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, url_for
from sqlalchemy import select

from tracker.api import ApiError, created, json_object_body
from tracker.auth.roles import OPERATOR, VIEWER, blueprint_access
from tracker.db_types import utcnow
from tracker.extensions import csrf, db
from tracker.instances import admin
from tracker.instances.discovery import prometheus_targets
from tracker.instances.fleet import forget_states
from tracker.instances.lookup import NOT_LISTED, instance_by_reference_or_404
from tracker.instances.models import (
    PAUSE_INSTANCE,
    PAUSE_KINDS,
    PAUSE_TAG,
    Instance,
    InstanceTag,
    OrganisationDefault,
    Pause,
)
from tracker.instances.validation import (
    ADMIN_UPDATE,
    organisation_name,
    parse_pause,
    parse_schedule,
)

bp = Blueprint("fleet_api", __name__)
blueprint_access(bp, read=VIEWER, write=OPERATOR)
csrf.exempt(bp)


def _body() -> dict:
    return json_object_body(current_app.config["API_MAX_BODY_BYTES"])


def pause_summary(pause: Pause) -> dict:
    return {
        "id": pause.id,
        "kind": pause.kind,
        "value": pause.value,
        "until": pause.until.isoformat(),
        "note": pause.note,
    }


def _pause_target(kind: str, value: str) -> str:
    if kind not in PAUSE_KINDS:
        raise ApiError(
            404, "Not found", f"kind: must be one of {', '.join(PAUSE_KINDS)}"
        )
    if kind == PAUSE_INSTANCE:
        # Kept by number: the list of pauses is for viewers too.
        instance = instance_by_reference_or_404(value, NOT_LISTED)
        return str(instance.id)
    if kind == PAUSE_TAG:
        return ADMIN_UPDATE.clean("tags", [value])[0]
    return organisation_name(value)


def _forget_paused(kind: str, value: str) -> None:
    """The states a pause starting or ending changes are judged again."""
    if kind == PAUSE_INSTANCE:
        paused = Instance.id == int(value)
    elif kind == PAUSE_TAG:
        paused = Instance.id.in_(
            select(InstanceTag.instance_id).where(InstanceTag.tag == value)
        )
    else:
        paused = Instance.organisation == value
    forget_states(db.session, paused)


@bp.get("/api/pauses")
def list_pauses():
    """The maintenance pauses still in force."""
    pauses = db.session.scalars(
        select(Pause).where(Pause.until > utcnow()).order_by(Pause.until)
    )
    return jsonify({"items": [pause_summary(p) for p in pauses]})


@bp.put("/api/pauses/<kind>/<path:value>")
def pause(kind: str, value: str):
    """Pause an instance (by number or uuid), a tag or an organisation until
    a time."""
    fields = parse_pause(_body())
    value = _pause_target(kind, value)
    existing = db.session.scalar(select(Pause).filter_by(kind=kind, value=value))
    if existing is None:
        existing = Pause(kind=kind, value=value)
        db.session.add(existing)
    existing.until, existing.note = fields["until"], fields["note"]
    _forget_paused(kind, value)
    db.session.commit()
    return created(
        pause_summary(existing),
        url_for("fleet_api.pause", kind=kind, value=value),
        status=200,
    )


@bp.delete("/api/pauses/<kind>/<path:value>")
def resume(kind: str, value: str):
    """End a pause now."""
    value = _pause_target(kind, value)
    existing = db.one_or_404(
        select(Pause).filter_by(kind=kind, value=value), description="not paused"
    )
    db.session.delete(existing)
    _forget_paused(kind, value)
    db.session.commit()
    return "", 204


def _default_summary(organisation: str, default: OrganisationDefault | None) -> dict:
    return {
        "organisation": organisation,
        "contact_every": default.contact_every if default else None,
        "contact_grace": default.contact_grace if default else None,
    }


@bp.get("/api/organisations/<path:organisation>/schedule")
def organisation_schedule(organisation: str):
    """The contact expected of an organisation's instances that set none."""
    organisation = organisation_name(organisation)
    return jsonify(
        _default_summary(
            organisation, db.session.get(OrganisationDefault, organisation)
        )
    )


@bp.put("/api/organisations/<path:organisation>/schedule")
def set_organisation_schedule(organisation: str):
    """Set the contact expected of an organisation's instances; 0 or null
    clears a value back to the settings' default."""
    organisation = organisation_name(organisation)
    schedule = parse_schedule(_body())
    default = admin.set_organisation_default(db.session, organisation, schedule)
    db.session.commit()
    return jsonify(_default_summary(organisation, default))


@bp.get("/api/sd/prometheus")
def prometheus_sd():
    """Prometheus HTTP service discovery: one target group per instance."""
    return jsonify(prometheus_targets(db.session, current_app.config, utcnow()))

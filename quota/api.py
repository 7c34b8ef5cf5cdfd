"""The quota admin API (API tokens) and the field clients' check-in (client
secrets): ``/api/quotas/...``."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, current_app, jsonify, url_for
from flask_login import current_user
from sqlalchemy import select

from quota.admin import (
    UNSET,
    AdminRefused,
    add_client,
    client_named,
    create_quota,
    find_client,
    quota_for,
    remove_client,
    update_client,
    update_quota,
)
from quota.controller import (
    Controller,
    Policy,
    QuotaNotActive,
    TransportError,
    check_report,
)
from quota.models import ControllerQuota, QuotaClient, QuotaHistory
from quota.overrides import OverrideRefused, approve_request
from quota.serialize import history_line, quota_detail, quota_summary
from tracker.api import (
    ApiError,
    created,
    invalid,
    json_object_body,
    paginated,
    refuse_unknown_keys,
)
from tracker.auth.roles import (
    ADMIN,
    PUBLIC,
    SUPERVISE,
    VIEWER,
    access,
    blueprint_access,
)
from tracker.auth.tokens import bearer_token
from tracker.db_types import utcnow
from tracker.extensions import csrf, db
from tracker.fields import FieldError, url_value

bp = Blueprint("quota_api", __name__, url_prefix="/api/quotas")
blueprint_access(bp, read=VIEWER, write=ADMIN)
csrf.exempt(bp)

QUOTA_FIELDS = ("record_kind", "target", "window_start", "window_expires", "active")
CLIENT_FIELDS = ("name", "endpoint", "secret", "weight", "max_ceiling", "active")
APPROVAL_FIELDS = ("request_code", "extra", "reclaim")


def _body() -> dict[str, Any]:
    return json_object_body(current_app.config["API_MAX_BODY_BYTES"])


def _actor() -> str:
    return f"API: {current_user.username}"


def _whole(body: dict, name: str, minimum: int = 0, required: bool = False):
    value = body.get(name)
    if value is None:
        if required:
            raise invalid(name, "required")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise invalid(name, f"must be a whole number >= {minimum}")
    if value > 2_000_000_000:
        raise invalid(name, "must be at most 2000000000")
    return value


def _moment(body: dict, name: str) -> datetime | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise invalid(name, "must be an ISO 8601 date-time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise invalid(name, "must be an ISO 8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _flag(body: dict, name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise invalid(name, "must be true or false")
    return value


def _text(body: dict, name: str, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise invalid(name, "must be a string of 1 to 200 characters")
    return value


def _refused(exc: AdminRefused | OverrideRefused) -> ApiError:
    field = getattr(exc, "field", None)
    return ApiError(409, "Refused", str(exc), field=field)


def _quota_or_404(kind: str) -> ControllerQuota:
    quota = quota_for(db.session, kind)
    if quota is None:
        raise ApiError(404, "Not found", f"no quota for {kind!r}", field="kind")
    return quota


def _client_or_404(quota: ControllerQuota, name: str) -> QuotaClient:
    client = client_named(quota, name)
    if client is None:
        raise ApiError(404, "Not found", f"no client {name!r} in this quota")
    return client


def _detail(quota: ControllerQuota) -> dict[str, Any]:
    skew = current_app.config["QUOTA_MAX_CLOCK_SKEW"]
    return quota_detail(db.session, quota, utcnow(), skew)


def _commit(action):
    try:
        result = action()
    except (AdminRefused, OverrideRefused) as exc:
        db.session.rollback()
        raise _refused(exc) from None
    db.session.commit()
    return result


@bp.get("")
def list_quotas():
    """List quotas with their numbers, a page at a time."""
    config = current_app.config
    return jsonify(
        paginated(
            select(ControllerQuota).order_by(ControllerQuota.id),
            lambda quota: quota_summary(db.session, quota),
            config["API_PAGE_SIZE"],
            config["API_MAX_PAGE_SIZE"],
        )
    )


@bp.post("")
def create():
    """Create a quota."""
    body = _body()
    refuse_unknown_keys(body, QUOTA_FIELDS[:4], "a quota")
    kind = _text(body, "record_kind")
    target = _whole(body, "target", 1, required=True)
    now = utcnow()
    start = _moment(body, "window_start") or now
    expires = _moment(body, "window_expires") or start + timedelta(days=365)
    quota = _commit(
        lambda: create_quota(db.session, kind, target, start, expires, _actor())
    )
    return created(_detail(quota), url_for("quota_api.show", kind=quota.record_kind))


@bp.get("/<kind>")
def show(kind: str):
    """Show a quota, its clients and their forecasts."""
    return jsonify(_detail(_quota_or_404(kind)))


@bp.patch("/<kind>")
def change(kind: str):
    """Change a quota's target, window or state."""
    body = _body()
    refuse_unknown_keys(body, QUOTA_FIELDS[1:], "a quota change")
    quota = _quota_or_404(kind)
    target = _whole(body, "target", 1)
    start, expires = _moment(body, "window_start"), _moment(body, "window_expires")
    active = _flag(body, "active")
    _commit(
        lambda: update_quota(
            db.session, quota, target, start, expires, active, actor=_actor()
        )
    )
    return jsonify(_detail(quota))


@bp.get("/<kind>/history")
def history(kind: str):
    """List a quota's history, newest first."""
    quota = _quota_or_404(kind)
    config = current_app.config
    return jsonify(
        paginated(
            select(QuotaHistory)
            .where(QuotaHistory.quota_id == quota.id)
            .order_by(QuotaHistory.id.desc()),
            history_line,
            config["API_PAGE_SIZE"],
            config["API_MAX_PAGE_SIZE"],
        )
    )


@bp.post("/<kind>/clients")
def add(kind: str):
    """Add a field client to a quota."""
    body = _body()
    refuse_unknown_keys(body, CLIENT_FIELDS[:3], "a client")
    quota = _quota_or_404(kind)
    name, secret = _text(body, "name"), _text(body, "secret")
    try:
        endpoint = url_value(body.get("endpoint"), "endpoint")
    except FieldError as exc:
        raise invalid("endpoint", str(exc)) from None
    _commit(lambda: add_client(db.session, quota, name, endpoint, secret, _actor()))
    return created(_detail(quota), url_for("quota_api.show", kind=kind))


@bp.patch("/<kind>/clients/<name>")
def change_client(kind: str, name: str):
    """Change a client's weight, maximum ceiling or state."""
    body = _body()
    refuse_unknown_keys(body, CLIENT_FIELDS[3:], "a client change")
    quota = _quota_or_404(kind)
    client = _client_or_404(quota, name)
    weight = body.get("weight")
    if weight is not None and (
        isinstance(weight, bool) or not isinstance(weight, int | float)
    ):
        raise invalid("weight", "must be a number from 0 to 1000")
    max_ceiling = (
        _whole(body, "max_ceiling") if "max_ceiling" in body else UNSET
    )  # null removes the maximum
    active = _flag(body, "active")
    _commit(
        lambda: update_client(
            db.session,
            quota,
            client,
            None if weight is None else float(weight),
            max_ceiling,
            active,
            _actor(),
        )
    )
    return jsonify(_detail(quota))


@bp.delete("/<kind>/clients/<name>")
def remove(kind: str, name: str):
    """Remove a client; what it may still create stays counted."""
    quota = _quota_or_404(kind)
    client = _client_or_404(quota, name)
    held = _commit(lambda: remove_client(db.session, quota, client, _actor()))
    return jsonify({"removed": name, "records_still_counted": held})


@bp.post("/<kind>/approvals")
@access(SUPERVISE)
def approve_override(kind: str):
    """Turn a client's request code into an approval code."""
    body = _body()
    refuse_unknown_keys(body, APPROVAL_FIELDS, "an approval")
    quota = _quota_or_404(kind)
    request_code = _text(body, "request_code")
    extra = _whole(body, "extra", 1, required=True)
    reclaim = bool(_flag(body, "reclaim"))
    approved = _commit(
        lambda: approve_request(
            db.session,
            quota,
            request_code,
            extra,
            current_app.config,
            db.session.commit,
            current_user.id,
            _actor(),
            reclaim=reclaim,
        )
    )
    response = jsonify({"approval_code": approved.code, "warning": approved.warning})
    response.status_code = 201
    return response


@bp.post("/<kind>/checkin")
@access(PUBLIC)
def check_in(kind: str):
    """A field client reports its state and takes its ceiling (client secret)."""
    body = _body()
    name = body.get("client")
    secret = bearer_token()
    quota = quota_for(db.session, kind)
    client = (
        find_client(db.session, quota, name)
        if quota is not None and isinstance(name, str)
        else None
    )
    # One answer for every failure, so that names cannot be probed.
    if (
        client is None
        or not secret
        or not hmac.compare_digest(secret.encode(), client.secret.encode())
    ):
        raise ApiError(401, "Unauthorized", "unknown client or wrong client secret")
    try:
        report = check_report(body)
    except TransportError as exc:
        raise ApiError(400, "Invalid value", str(exc), field="body") from None
    controller = Controller(
        db.session,
        quota,
        None,
        db.session.commit,
        policy=Policy.from_config(current_app.config),
        actor="check-in",
    )
    try:
        answer = controller.check_in(client, report)
    except QuotaNotActive as exc:
        db.session.rollback()
        raise ApiError(409, "Not active", str(exc)) from None
    return jsonify({"record_kind": kind, **answer})

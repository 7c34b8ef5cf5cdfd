"""The blueprint a field application registers so the controller can reach it.

JSON, authenticated with the client's shared secret as a Bearer token:
``GET /quota/<kind>`` (state) and ``PUT /quota/<kind>`` (ceiling, window and
lease; optional ``confirmed``, ``lease_expires``, ``controller_time`` and
``max_clock_skew``). Every answer carries the device's ``clock``.
A page, for the field user: ``/quota/<kind>/override`` shows the request code
and takes the supervisor's approval code.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from html import escape

from flask import Blueprint, Response, abort, jsonify, request
from sqlalchemy.orm import Session

from quota.client.codes import InvalidCode
from quota.client.operations import (
    CeilingBelowCount,
    StaleCeiling,
    apply_override,
    quota_state,
    request_code,
    set_ceiling,
)

# What the client's columns hold: a 32-bit ceiling, 64-bit Unix times.
MAX_CEILING = 2**31 - 1
MAX_TIME = 2**63 - 1


def _integer(data: dict, field: str, maximum: int = MAX_TIME) -> int:
    value = data.get(field)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 0 <= value <= maximum
    ):
        abort(
            _error(
                400,
                "Invalid value",
                f"{field}: must be a whole number from 0 to {maximum}",
                field,
            )
        )
    return value


def _json_body() -> object:
    """The request's JSON, or None when it is not JSON (or nests too deep)."""
    try:
        return request.get_json(silent=True)
    except RecursionError:
        return None


def _optional_integer(data: dict, field: str) -> int | None:
    return None if data.get(field) is None else _integer(data, field)


def _error(status: int, error: str, message: str, field: str | None = None, **extra):
    body = {"error": error, "message": message, **extra}
    if field:
        body["field"] = field
    response = jsonify(body)
    response.status_code = status
    return response


def _page(kind: str, body: str, status: int = 200) -> Response:
    """The field user's page (HTML, never a JSON error)."""
    return Response(
        "<!doctype html><title>Quota override</title>"
        f"<h1>Quota for {escape(kind)}</h1>{body}",
        status=status,
        content_type="text/html; charset=utf-8",
    )


def make_blueprint(
    session: Callable[[], Session],
    quota_model: type,
    override_model: type,
    client_name: str,
    secret: str,
    csrf_exempt: Callable | None = None,
    kinds: Iterable[str] | None = None,
) -> Blueprint:
    """Build the blueprint for this field client (``client_name``, ``secret``);
    ``kinds`` lists the record kinds it counts (others answer 404)."""
    bp = Blueprint("quota_client", __name__, url_prefix="/quota")
    known = set(kinds) if kinds is not None else None

    @bp.url_value_preprocessor
    def known_kind(endpoint, values) -> None:
        if known is not None and values and values.get("kind") not in known:
            kind = str(values.get("kind"))
            if endpoint == f"{bp.name}.override":
                listed = ", ".join(sorted(known)) or "none"
                abort(
                    _page(
                        kind,
                        f"<p>No quota counts {escape(kind)} records on this device"
                        f" (it counts: {escape(listed)}).</p>",
                        404,
                    )
                )
            abort(
                _error(404, "Unknown record kind", "no model counts this kind", "kind")
            )

    def authorised() -> None:
        auth = request.authorization
        token = auth.token if auth is not None and auth.type == "bearer" else None
        if not token or not hmac.compare_digest(token, secret):
            abort(_error(401, "Unauthorized", "wrong or missing client credentials"))

    @bp.get("/<kind>")
    def show(kind: str):
        """Report ceiling, count and window of one record kind."""
        authorised()
        return jsonify(quota_state(session(), quota_model, override_model, kind))

    @bp.put("/<kind>")
    def change(kind: str):
        """Set the ceiling and window of one record kind."""
        authorised()
        data = _json_body()
        if not isinstance(data, dict):
            return _error(400, "Invalid JSON", "body: must be a JSON object", "body")
        ceiling = _integer(data, "ceiling", MAX_CEILING)
        start, expires = (
            _integer(data, "window_start"),
            _integer(data, "window_expires"),
        )
        if expires <= start:
            return _error(
                400,
                "Invalid value",
                "window_expires: must follow window_start",
                "window_expires",
            )
        confirmed = _optional_integer(data, "confirmed")
        lease = _optional_integer(data, "lease_expires") or 0
        controller_time = _optional_integer(data, "controller_time")
        bound = _optional_integer(data, "max_clock_skew")
        db_session = session()
        try:
            set_ceiling(
                db_session,
                quota_model,
                kind,
                ceiling,
                start,
                expires,
                confirmed=confirmed,
                lease_expires=lease,
                controller_time=controller_time,
                clock_bound=bound,
            )
        except CeilingBelowCount as exc:
            db_session.rollback()
            return _error(
                409, "Ceiling below count", str(exc), "ceiling", count=exc.count
            )
        except StaleCeiling as exc:
            db_session.rollback()
            return _error(409, "Stale ceiling", str(exc), "lease_expires")
        db_session.commit()
        return jsonify(quota_state(db_session, quota_model, override_model, kind))

    @bp.route("/<kind>/override", methods=["GET", "POST"])
    def override(kind: str):
        """Show the request code; accept the supervisor's approval code."""
        db_session = session()
        message = ""
        if request.method == "POST":
            try:
                approval = apply_override(
                    db_session,
                    quota_model,
                    override_model,
                    client_name,
                    secret,
                    kind,
                    request.form.get("code", ""),
                )
                db_session.commit()
                message = f"Approved: {approval.extra} more {kind} records allowed."
            except InvalidCode as exc:
                db_session.rollback()
                message = f"Refused: {exc}."
        code = request_code(db_session, quota_model, override_model, client_name, kind)
        db_session.commit()
        return _page(
            kind,
            f"<p>{escape(message)}</p>"
            f"<p>Request code: <code id='request-code'>{escape(code)}</code></p>"
            "<form method='post'><label>Approval code <input name='code'></label>"
            "<button type='submit'>Apply</button></form>",
        )

    if csrf_exempt is not None:
        csrf_exempt(bp)
    return bp

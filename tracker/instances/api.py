"""The instance registry's JSON API, wire-compatible with existing clients."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request, url_for
from flask_login import current_user
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from tracker.api import ApiError, boolean_arg, created, json_object_body, paginated
from tracker.auth.roles import (
    ADMIN,
    OPERATOR,
    PUBLIC,
    VIEWER,
    access,
    blueprint_access,
    sees_credentials,
)
from tracker.batch import operations
from tracker.batch.serialize import batch_operation_summary
from tracker.db_types import utcnow
from tracker.extensions import csrf, db, limiter
from tracker.instances import admin, idempotency
from tracker.instances.changes import admin_update_instance, update_instance
from tracker.instances.charts import daily_fields, field_settings
from tracker.instances.contact import note_contact, record_heartbeat
from tracker.instances.crawlability import AWAITS_APPROVAL, DISABLED, crawl_refusal
from tracker.instances.crawled_values import document_problem
from tracker.instances.crawler import CrawlSettings
from tracker.instances.crawling import SCOPE_ALL, instance_scope
from tracker.instances.launch import QueueUnavailable, launch_crawl
from tracker.instances.lookup import (
    NOT_LISTED,
    instance_by_reference_or_404,
    instance_or_404,
    summary_or_404,
)
from tracker.instances.models import VIA_UPDATE, Instance
from tracker.instances.registration import register_instance
from tracker.instances.serialize import instance_detail, instance_summary
from tracker.instances.states import expectations
from tracker.instances.tallies import app_charts
from tracker.instances.validation import (
    parse_admin_update,
    parse_location,
    parse_registration,
    parse_update,
)

bp = Blueprint("instances_api", __name__)
blueprint_access(bp, read=VIEWER, write=OPERATOR)
SEARCHED_COLUMNS = (
    Instance.url,
    Instance.contact,
    Instance.email,
    Instance.organisation,
)
csrf.exempt(bp)


NOT_REGISTERED = "no instance with this uuid; register again"


def _instance_or_404(uuid: str) -> Instance:
    return instance_or_404(uuid, NOT_REGISTERED)


def _listed_or_404(reference: str) -> Instance:
    """The instance an admin-API path names, by its number or its uuid."""
    return instance_by_reference_or_404(reference, NOT_LISTED)


def _detail(instance: Instance) -> dict:
    expected = expectations(db.session, current_app.config, [instance.id])
    return instance_detail(instance, expected, utcnow(), sees_credentials())


def _body() -> dict:
    return json_object_body(current_app.config["API_MAX_BODY_BYTES"])


def _registration_limit() -> str:
    return current_app.config["API_REGISTRATION_RATE_LIMIT"] or ""


def _registration_unlimited() -> bool:
    return current_app.config["API_REGISTRATION_RATE_LIMIT"] is None


# The original tracker answered on /instance/; Indico posts to /api/instance/.
# Every spelling is routed directly: a redirect would turn a POST into a GET.
@bp.post("/api/instance/")
@bp.post("/api/instance", endpoint="register_no_slash")
@bp.post("/instance/", endpoint="register_legacy")
@bp.post("/instance", endpoint="register_legacy_no_slash")
@access(PUBLIC)
@limiter.shared_limit(
    _registration_limit, "registration", exempt_when=_registration_unlimited
)
def register():
    """Register a new instance and answer its uuid; a retry carrying the same
    ``Idempotency-Key`` answers the same instance."""
    key = idempotency.key_digest(request.headers.get(idempotency.HEADER))
    values = parse_registration(_body())
    content = idempotency.fingerprint(values)
    earlier = key and idempotency.earlier_registration(db.session, key, content)
    if earlier:
        return _registered(earlier)
    try:
        # An admin approves it: only then does it get crawl headers.
        instance = register_instance(db.session, values, app_charts())
        if key:
            idempotency.remember(db.session, key, content, instance.id)
        # The answer is built from the values written: nothing is read back.
        answer = _registered(instance)
        db.session.commit()
    except IntegrityError:
        # The same key, sent again while the first request was being stored.
        db.session.rollback()
        earlier = key and idempotency.earlier_registration(db.session, key, content)
        if not earlier:
            raise
        answer = _registered(earlier)
    return answer


def _registered(instance: Instance):
    return created(
        {"uuid": instance.uuid, **instance_summary(instance)},
        url_for("instances_api.show", uuid=instance.uuid),
    )


@bp.get("/api/instance/<uuid>")
@bp.get("/instance/<uuid>", endpoint="show_legacy")
@access(PUBLIC)
def show(uuid: str):
    """Answer an instance's summary."""
    return jsonify(instance_summary(summary_or_404(uuid, NOT_REGISTERED)))


@bp.patch("/api/instance/<uuid>")
@bp.patch("/instance/<uuid>", endpoint="update_legacy")
@access(PUBLIC)
def update(uuid: str):
    """Change some of an instance's fields; null leaves a field as it is."""
    changes = parse_update(_body())
    instance = _instance_or_404(uuid)
    update_instance(instance, changes)
    # Even a PATCH that changes nothing (a client's routine sync) is contact.
    note_contact(db.session, instance, VIA_UPDATE)
    db.session.commit()
    return jsonify(instance_summary(instance))


def _heartbeat_limit() -> str:
    return current_app.config["API_HEARTBEAT_RATE_LIMIT"] or ""


def _heartbeat_unlimited() -> bool:
    return current_app.config["API_HEARTBEAT_RATE_LIMIT"] is None


def _heartbeat_key() -> str:
    return "heartbeat:" + request.view_args["uuid"]


@bp.post("/api/instance/<uuid>/heartbeat")
@access(PUBLIC)
@limiter.limit(
    _heartbeat_limit, key_func=_heartbeat_key, exempt_when=_heartbeat_unlimited
)
def heartbeat(uuid: str):
    """Check in, optionally with values that join the crawled ones."""
    config = current_app.config
    values = json_object_body(config["API_MAX_BODY_BYTES"], empty_is_object=True)
    problem = document_problem(
        values, config["CRAWL_MAX_DEPTH"], config["CRAWL_MAX_KEYS"]
    )
    if problem is not None:
        raise ApiError(400, "Invalid value", f"body: {problem}", field="body")
    instance = _instance_or_404(uuid)
    record_heartbeat(
        db.session,
        instance,
        values,
        CrawlSettings.from_config(config).endpoints,
        daily_fields(field_settings(config["CRAWLED_FIELDS_SETTINGS"])),
    )
    db.session.commit()
    return jsonify(
        {
            **instance_summary(instance),
            "last_contact": instance.last_contact.isoformat(),
        }
    )


@bp.get("/api/instances")
def list_instances():
    """List instances a page at a time, filtered by enabled, organisation, text."""
    statement = select(Instance).order_by(
        Instance.registered.desc(), Instance.id.desc()
    )
    enabled = boolean_arg("enabled")
    if enabled is not None:
        statement = statement.where(Instance.enabled.is_(enabled))
    organisation = request.args.get("organisation") or request.args.get("organization")
    if organisation:
        statement = statement.where(Instance.organisation == organisation)
    text = request.args.get("q", "").strip()
    if text:
        statement = statement.where(
            or_(
                *(
                    column.icontains(text, autoescape=True)
                    for column in SEARCHED_COLUMNS
                )
            )
        )
    config = current_app.config
    expected, now = expectations(db.session, config), utcnow()
    credentials = sees_credentials()
    return jsonify(
        paginated(
            statement,
            lambda instance: instance_detail(instance, expected, now, credentials),
            config["API_PAGE_SIZE"],
            config["API_MAX_PAGE_SIZE"],
        )
    )


@bp.get("/api/instances/<reference>")
def show_instance(reference: str):
    """Answer an instance's detail: the summary, crawl state, who disabled it."""
    return jsonify(_detail(_listed_or_404(reference)))


@bp.patch("/api/instances/<reference>")
def admin_update(reference: str):
    """Change an instance as an admin; an admin's disable outlasts its client's
    ``{"enabled": true}``."""
    changes, tags = parse_admin_update(_body())
    instance = _listed_or_404(reference)
    admin_update_instance(instance, changes)
    if tags is not None:
        admin.set_tags(db.session, instance, tags)
    db.session.commit()
    return jsonify(_detail(instance))


@bp.delete("/api/instances/<reference>")
@access(ADMIN)
def delete_instance(reference: str):
    """Delete an instance; its client will register again."""
    db.session.delete(_listed_or_404(reference))
    db.session.commit()
    return "", 204


def _start_crawl(scope: str, instance_ids: list[int] | None = None):
    """Queue a crawl; answer 202 with its batch operation."""
    try:
        operation = launch_crawl(scope, instance_ids, current_user.id)
    except operations.AlreadyActive as exc:
        raise ApiError(
            409,
            "Already running",
            "a crawl of this scope is still active",
            batch_operation_id=exc.existing.id if exc.existing else None,
        ) from None
    except QueueUnavailable:
        raise ApiError(
            503, "Queue unavailable", "cannot reach the task queue"
        ) from None
    return created(
        batch_operation_summary(operation),
        url_for("batch_api.show", operation_id=operation.id),
        status=202,
    )


@bp.post("/api/instances/crawl")
def crawl_all():
    """Crawl every enabled instance in the background; answer the batch operation."""
    return _start_crawl(SCOPE_ALL)


@bp.post("/api/instances/<reference>/crawl")
def crawl_one(reference: str):
    """Crawl one instance in the background; answer the batch operation."""
    instance = _listed_or_404(reference)
    refusal = crawl_refusal(instance, current_app.config["CRAWL_REQUIRE_APPROVAL"])
    if refusal == DISABLED:
        raise ApiError(409, "Disabled", "the instance is disabled; enable it first")
    if refusal == AWAITS_APPROVAL:
        raise ApiError(409, "Not approved", "the instance awaits approval")
    return _start_crawl(instance_scope(instance.id), [instance.id])


@bp.post("/api/instances/<reference>/approve")
def approve_instance(reference: str):
    """Accept an instance for crawling."""
    instance = _listed_or_404(reference)
    admin.approve(instance)
    db.session.commit()
    return jsonify(_detail(instance))


@bp.put("/api/instances/<reference>/location")
def set_location(reference: str):
    """Set an instance's location by hand (say, a site behind a private network)."""
    location = parse_location(_body())
    instance = _listed_or_404(reference)
    admin.set_manual_location(instance, location)
    db.session.commit()
    return jsonify(_detail(instance))


@bp.delete("/api/instances/<reference>/location")
def clear_location(reference: str):
    """Forget a hand-set location; the next crawl looks the address up again."""
    instance = _listed_or_404(reference)
    admin.clear_manual_location(instance)
    db.session.commit()
    return jsonify(_detail(instance))

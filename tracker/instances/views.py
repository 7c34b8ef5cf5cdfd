"""Dashboard pages of the instance registry: list, detail, statistics."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import func, select

from tracker.api import page_within
from tracker.auth.roles import (
    ADMIN,
    OPERATOR,
    VIEWER,
    access,
    blueprint_access,
    can,
    sees_credentials,
)
from tracker.batch import operations
from tracker.db_types import utcnow
from tracker.devices import linked_devices
from tracker.extensions import db
from tracker.fields import FieldError
from tracker.instances import admin
from tracker.instances.bulk import ACTIONS, apply_bulk, csv_rows
from tracker.instances.changes import admin_update_instance
from tracker.instances.charts import default_label, field_settings
from tracker.instances.crawlability import AWAITS_APPROVAL, DISABLED, crawl_refusal
from tracker.instances.crawling import SCOPE_ALL, instance_scope
from tracker.instances.first_steps import first_steps
from tracker.instances.fleet import fleet_view, page_states
from tracker.instances.forms import EDITABLE_FIELDS, InstanceForm, LocationForm
from tracker.instances.launch import QueueUnavailable, launch_crawl
from tracker.instances.listing import ListQuery, list_statement
from tracker.instances.lookup import instance_by_number_or_404, instance_or_404
from tracker.instances.models import PAUSE_INSTANCE, CrawlResult, Instance, Pause
from tracker.instances.state_names import CHANNEL_NAMES, STATE_NAMES
from tracker.instances.states import expectations, instance_state
from tracker.instances.statistics import gather
from tracker.instances.uptime import instance_uptime
from tracker.instances.validation import parse_location

bp = Blueprint("instances", __name__)
blueprint_access(bp, read=VIEWER, write=OPERATOR)
HISTORY_ROWS = 20


def _fields():
    return field_settings(current_app.config["CRAWLED_FIELDS_SETTINGS"])


def _columns() -> list[tuple[str, str]]:
    """Crawled fields shown as list columns: the configured ones, labelled."""
    return [(name, setting.label) for name, setting in _fields().items()]


def _instance_or_404(number: int) -> Instance:
    return instance_by_number_or_404(number, _("No instance with this number."))


def _start(scope: str, instance_ids: list[int] | None = None) -> int | None:
    """Queue a crawl and flash what happened; return the operation id."""
    try:
        operation = launch_crawl(scope, instance_ids, current_user.id)
    except operations.AlreadyActive as exc:
        flash(_("A crawl is already running."), "info")
        return exc.existing.id if exc.existing else None
    except QueueUnavailable:
        flash(_("The task queue cannot be reached; try again later."), "error")
        return None
    flash(_("Crawl started."), "success")
    return operation.id


@bp.get("/")
def index():
    """List instances with filters, sorting, crawled columns and pagination."""
    columns = _columns()
    query = ListQuery.from_args(request.args, {name for name, _label in columns})
    now = utcnow()
    fleet = fleet_view(db.session, current_app.config, now)
    statement = list_statement(
        query,
        db.engine.dialect.name,
        fleet.condition(query.state, now) if query.state else None,
    )
    pagination = page_within(statement, current_app.config["DASHBOARD_PAGE_SIZE"])
    active = db.session.scalar(
        select(func.count(Instance.id)).where(Instance.enabled.is_(True))
    )
    countries = db.session.execute(
        select(Instance.country_code, Instance.country_name)
        .where(Instance.country_code.is_not(None))
        .group_by(Instance.country_code, Instance.country_name)
        .order_by(Instance.country_name)
    ).all()
    return render_template(
        "instances/index.html",
        pagination=pagination,
        query=query,
        columns=columns,
        active=active,
        countries=countries,
        operation_id=request.args.get("operation", type=int),
        fleet=fleet,
        row_states=page_states(db.session, current_app.config, pagination.items, now),
        state_names=STATE_NAMES,
        steps=first_steps(db.session, current_app.config),
        filtered=bool(query.as_args(sort="", dir="")),
    )


@bp.get("/instances.csv")
def export_csv():
    """The filtered list, every page of it, as CSV."""
    columns = _columns()
    query = ListQuery.from_args(request.args, {name for name, _label in columns})
    now = utcnow()
    in_state = None
    if query.state:
        in_state = fleet_view(db.session, current_app.config, now).condition(
            query.state, now
        )
    statement = list_statement(query, db.engine.dialect.name, in_state)
    rows = csv_rows(
        db.session,
        statement,
        [name for name, _label in columns],
        credentials=sees_credentials(),
    )
    return Response(
        stream_with_context(rows),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="instances.csv"'},
    )


BULK_DONE = {
    "enable": lambda count: ngettext(
        "Enabled %(num)d instance.", "Enabled %(num)d instances.", count
    ),
    "disable": lambda count: ngettext(
        "Disabled %(num)d instance.", "Disabled %(num)d instances.", count
    ),
    "approve": lambda count: ngettext(
        "Approved %(num)d instance.", "Approved %(num)d instances.", count
    ),
    "delete": lambda count: ngettext(
        "Deleted %(num)d instance.", "Deleted %(num)d instances.", count
    ),
}


@bp.post("/instances/bulk")
def bulk():
    """Enable, disable, approve or delete the instances ticked in the list."""
    action = request.form.get("action", "")
    if action not in ACTIONS:
        abort(400, description=_("Unknown action."))
    if action == "delete" and not can(ADMIN):
        abort(403, description=_("Deleting instances needs the admin role."))
    columns = {name for name, _label in _columns()}
    back = url_for(
        "instances.index", **ListQuery.from_args(request.form, columns).as_args()
    )
    numbers = request.form.getlist("number", type=int)
    if not numbers:
        flash(_("Tick the instances to act on first."), "warning")
        return redirect(back)
    count = apply_bulk(db.session, action, numbers)
    db.session.commit()
    flash(BULK_DONE[action](count), "success")
    return redirect(back)


@bp.post("/instances/crawl")
def crawl_all():
    """Start crawling every enabled instance in the background."""
    operation_id = _start(SCOPE_ALL)
    return redirect(url_for("instances.index", operation=operation_id))


@bp.get("/instances/<int:number>")
def detail(number: int):
    """Show one instance: fields, crawled values, history, map."""
    return _render_detail(_instance_or_404(number))


@bp.get("/instances/<uuid>")
def detail_by_uuid(uuid: str):
    """An instance's page as older links name it, by its uuid: to its number."""
    instance = instance_or_404(uuid, _("No instance with this id."))
    # Not permanent: a number may name another instance once this one is gone.
    return redirect(url_for("instances.detail", number=instance.id))


def _render_detail(instance: Instance, form=None, location_form=None):
    """The detail page; a refused form is shown again as it was typed."""
    fields = _fields()
    crawled = [
        (fields[name].label if name in fields else default_label(name), value)
        for name, value in sorted((instance.crawled or {}).items())
    ]
    history = db.session.scalars(
        select(CrawlResult)
        .where(CrawlResult.instance_id == instance.id)
        .order_by(CrawlResult.crawled_at.desc())
        .limit(HISTORY_ROWS)
    ).all()
    expected = expectations(db.session, current_app.config, [instance.id])
    now = utcnow()
    schedule = expected.schedule(instance)
    return render_template(
        "instances/detail.html",
        instance=instance,
        state=instance_state(instance, expected, now),
        state_names=STATE_NAMES,
        channel_names=CHANNEL_NAMES,
        now=now,
        schedule=schedule,
        organisation_default=expected.defaults.get(instance.organisation),
        tags=sorted(expected.tags.get(instance.id, ())),
        pause=db.session.scalar(
            select(Pause).filter_by(kind=PAUSE_INSTANCE, value=str(instance.id))
        ),
        linked=linked_devices(db.session, instance.id),
        uptime=instance_uptime(
            db.session, instance.id, instance.registered, schedule, now
        ),
        crawled=crawled,
        history=history,
        form=form or InstanceForm(obj=instance),
        location_form=location_form or LocationForm(obj=instance),
        operation_id=request.args.get("operation", type=int),
    )


@bp.post("/instances/<int:number>/edit")
def edit(number: int):
    """Save an instance's main fields."""
    instance = _instance_or_404(number)
    form = InstanceForm()
    if form.validate_on_submit():
        admin_update_instance(
            instance,
            {name: form[name].data for name in EDITABLE_FIELDS},
        )
        db.session.commit()
        flash(_("Saved."), "success")
        return redirect(url_for("instances.detail", number=number))
    for field, errors in form.errors.items():
        label = getattr(form, field).label.text if hasattr(form, field) else field
        flash(f"{label}: {'; '.join(errors)}", "error")
    return _render_detail(instance, form=form), 400


@bp.post("/instances/<int:number>/enabled")
def set_enabled(number: int):
    """Enable or disable tracking of an instance."""
    instance = _instance_or_404(number)
    admin_update_instance(
        instance,
        {"enabled": request.form.get("enabled") == "yes"},
    )
    db.session.commit()
    if instance.enabled:
        flash(_("Enabled."), "success")
    elif instance.admin_disabled:
        flash(_("Disabled: its client cannot enable it again."), "success")
    else:
        flash(_("Enabled by you, but its client has switched tracking off."), "warning")
    return redirect(url_for("instances.detail", number=number))


@bp.post("/instances/<int:number>/delete")
@access(ADMIN)
def delete(number: int):
    """Delete an instance and its history."""
    instance = _instance_or_404(number)
    db.session.delete(instance)
    db.session.commit()
    flash(_("Deleted %(url)s.", url=instance.url), "success")
    return redirect(url_for("instances.index"))


@bp.post("/instances/<int:number>/approve")
def approve(number: int):
    """Accept an instance for crawling."""
    instance = _instance_or_404(number)
    admin.approve(instance)
    db.session.commit()
    flash(_("Approved: crawls send it the configured headers."), "success")
    return redirect(url_for("instances.detail", number=number))


@bp.post("/instances/<int:number>/location")
def set_location(number: int):
    """Pin an instance's location by hand."""
    instance = _instance_or_404(number)
    form = LocationForm()
    if not form.validate_on_submit():
        flash(_("Location not saved: check the coordinates."), "error")
        return _render_detail(instance, location_form=form), 400
    try:
        location = parse_location(
            {
                "latitude": form.latitude.data,
                "longitude": form.longitude.data,
                "country_code": form.country_code.data,
                "city": form.city.data or None,
            }
        )
    except FieldError as exc:
        flash(str(exc), "error")
        return _render_detail(instance, location_form=form), 400
    admin.set_manual_location(instance, location)
    db.session.commit()
    flash(_("Location saved."), "success")
    return redirect(url_for("instances.detail", number=number))


@bp.post("/instances/<int:number>/location/clear")
def clear_location(number: int):
    """Go back to the GeoIP location."""
    instance = _instance_or_404(number)
    admin.clear_manual_location(instance)
    db.session.commit()
    flash(_("The location will come from GeoIP again."), "success")
    return redirect(url_for("instances.detail", number=number))


@bp.post("/instances/<int:number>/crawl")
def crawl_one(number: int):
    """Crawl one instance now, in the background."""
    instance = _instance_or_404(number)
    operation_id = None
    refusal = crawl_refusal(instance, current_app.config["CRAWL_REQUIRE_APPROVAL"])
    if refusal == DISABLED:
        flash(_("Enable the instance to crawl it."), "error")
    elif refusal == AWAITS_APPROVAL:
        flash(_("Approve the instance to crawl it."), "error")
    else:
        operation_id = _start(instance_scope(instance.id), [instance.id])
    return redirect(url_for("instances.detail", number=number, operation=operation_id))


@bp.get("/statistics")
def statistics():
    """Show the world map, the country table and the configured charts."""
    return render_template(
        "instances/statistics.html", stats=gather(db.session, _fields())
    )

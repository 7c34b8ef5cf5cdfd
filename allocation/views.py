"""Dashboard pages: the ledger, the project tree, an allocation pool's usage,
reports and CSV exports."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    render_template,
    request,
    stream_with_context,
)
from flask_babel import gettext as _
from sqlalchemy import select

from allocation.ledger import LedgerFilter, ledger, pool_usage_by_day
from allocation.models import AllocationPeriod, AllocationPool, Project
from allocation.reports import (
    burn_rate,
    ledger_csv,
    machine_utilisation,
    period_hours,
    usage_by,
    usage_csv,
)
from allocation.serialize import ledger_status
from allocation.tree import project_tree
from allocation.units import humanise
from tracker.auth.roles import ADMIN, VIEWER, blueprint_access
from tracker.extensions import db

bp = Blueprint(
    "allocation",
    __name__,
    url_prefix="/allocation",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
blueprint_access(bp, read=VIEWER, write=ADMIN)


@bp.app_template_filter("allocation_quantity")
def allocation_quantity(value: float, unit: str) -> str:
    """Show a quantity in its pool's unit, humanised (``1.5 GB``)."""
    return humanise(value, unit)


def _zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["ALLOCATION_TIMEZONE"])


def _today() -> dt.date:
    return dt.datetime.now(_zone()).date()


def _periods() -> list[AllocationPeriod]:
    return list(
        db.session.scalars(
            select(AllocationPeriod).order_by(
                AllocationPeriod.end.desc(), AllocationPeriod.name
            )
        )
    )


def _chosen_period(periods: list[AllocationPeriod]) -> AllocationPeriod | None:
    """The period asked for (``period_id``, or ``period`` by name, as the
    commands take it), else the one containing today, else the latest."""
    name = request.args.get("period")
    if name is not None and not request.args.get("period_id"):
        chosen = next((p for p in periods if p.name == name.strip()), None)
        if chosen is None:
            known = ", ".join(p.name for p in periods) or _("none yet")
            abort(
                404,
                description=_(
                    "No allocation period is named %(name)s (periods: %(known)s).",
                    name=name[:100],
                    known=known,
                ),
            )
        return chosen
    raw = request.args.get("period_id", "")
    if raw:
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
            abort(400, description=_("period_id must be a number."))
        chosen = next((p for p in periods if p.id == int(raw)), None)
        if chosen is None:
            abort(404, description=_("No allocation period with this id."))
        return chosen
    today = _today()
    current = next((p for p in periods if p.start <= today < p.end), None)
    return current or (periods[0] if periods else None)


@bp.get("/")
def index():
    """Show every allocation pool's balance; near or over allocation highlighted."""
    periods = _periods()
    period = _chosen_period(periods)
    near = current_app.config["ALLOCATION_NEAR_PERCENT"]
    lines = ledger(db.session, LedgerFilter(period_ids=[period.id])) if period else []
    today = _today()
    rows = [
        (line, ledger_status(line, near), burn_rate(line, period, today))
        for line in lines
    ]
    return render_template(
        "allocation/ledger.html",
        rows=rows,
        periods=periods,
        period=period,
        near=near,
    )


@bp.get("/tree")
def tree():
    """Show the project tree with what each project is allocated and uses."""
    periods = _periods()
    period = _chosen_period(periods)
    roots = project_tree(db.session, period) if period else []
    return render_template(
        "allocation/tree.html",
        roots=roots,
        periods=periods,
        period=period,
        near=current_app.config["ALLOCATION_NEAR_PERCENT"],
        status=ledger_status,
    )


@bp.get("/pools/<int:pool_id>")
def pool(pool_id: int):
    """Chart an allocation pool's usage over time against its allocation."""
    allocation_pool = db.get_or_404(
        AllocationPool, pool_id, description=_("No allocation pool with this id.")
    )
    (line,) = ledger(db.session, LedgerFilter(pool_ids=[pool_id]))
    days = pool_usage_by_day(db.session, allocation_pool)
    cumulative, running = [], 0.0
    for _day, used in days:
        running += used
        cumulative.append(round(running, 6))
    chart = {
        "labels": [day.isoformat() for day, _used in days],
        "daily": [used for _day, used in days],
        "cumulative": cumulative if line.function == "sum" else None,
        "allocated": line.allocated,
        "units": line.units,
        "function": line.function,
    }
    near = current_app.config["ALLOCATION_NEAR_PERCENT"]
    return render_template(
        "allocation/pool.html",
        line=line,
        status=ledger_status(line, near),
        chart=chart,
        burn=burn_rate(line, allocation_pool.period, _today()),
    )


def _csv(chunks, filename: str) -> Response:
    return Response(
        stream_with_context(chunks),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _period_or_404() -> AllocationPeriod:
    period = _chosen_period(_periods())
    if period is None:
        abort(404, description=_("No allocation period yet."))
    return period


@bp.get("/ledger.csv")
def ledger_export():
    """Download a period's ledger as CSV."""
    period = _period_or_404()
    lines = ledger(db.session, LedgerFilter(period_ids=[period.id]))
    return _csv(ledger_csv(lines), f"ledger-{period.id}.csv")


@bp.get("/usage.csv")
def usage_export():
    """Download a period's daily usage (machine, resource, project) as CSV."""
    period = _period_or_404()
    return _csv(usage_csv(db.session, period), f"usage-{period.id}.csv")


@bp.get("/machines")
def machines():
    """Show each machine's capacity and utilisation over a period."""
    periods = _periods()
    period = _chosen_period(periods)
    rows = machine_utilisation(db.session, period, _zone()) if period else []
    return render_template(
        "allocation/machines.html",
        rows=rows,
        periods=periods,
        period=period,
        hours=period_hours(period, _zone()) if period else 0,
    )


@bp.get("/projects/<int:project_id>/usage")
def project_usage(project_id: int):
    """Show a project's CPU usage (with its sub-projects) per user and account."""
    project = db.get_or_404(Project, project_id, description=_("No such project."))
    periods = _periods()
    period = _chosen_period(periods)
    by_user = by_account = []
    if period is not None:
        by_user = usage_by(db.session, project.id, period, _zone(), "user")
        by_account = usage_by(db.session, project.id, period, _zone(), "account")
    return render_template(
        "allocation/project_usage.html",
        project=project,
        periods=periods,
        period=period,
        by_user=by_user,
        by_account=by_account,
    )

"""Dashboard pages: the ledger, the project tree, an allocation pool's usage."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, current_app, render_template, request
from flask_babel import gettext as _
from sqlalchemy import select

from allocation.ledger import LedgerFilter, ledger, pool_usage_by_day
from allocation.models import AllocationPeriod, AllocationPool
from allocation.serialize import ledger_status
from allocation.tree import project_tree
from tracker.auth import login_required_blueprint
from tracker.extensions import db

bp = Blueprint(
    "allocation",
    __name__,
    url_prefix="/allocation",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
login_required_blueprint(bp)


def _periods() -> list[AllocationPeriod]:
    return list(
        db.session.scalars(
            select(AllocationPeriod).order_by(
                AllocationPeriod.end.desc(), AllocationPeriod.name
            )
        )
    )


def _chosen_period(periods: list[AllocationPeriod]) -> AllocationPeriod | None:
    """The period asked for, else the one containing today, else the latest."""
    raw = request.args.get("period_id", "")
    if raw:
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
            abort(400, description=_("period_id must be a number."))
        chosen = next((p for p in periods if p.id == int(raw)), None)
        if chosen is None:
            abort(404, description=_("No allocation period with this id."))
        return chosen
    today = dt.date.today()
    current = next((p for p in periods if p.start <= today < p.end), None)
    return current or (periods[0] if periods else None)


@bp.get("/")
def index():
    """Show every allocation pool's balance; near or over allocation highlighted."""
    periods = _periods()
    period = _chosen_period(periods)
    near = current_app.config["ALLOCATION_NEAR_PERCENT"]
    lines = ledger(db.session, LedgerFilter(period_ids=[period.id])) if period else []
    rows = [(line, ledger_status(line, near)) for line in lines]
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
    )

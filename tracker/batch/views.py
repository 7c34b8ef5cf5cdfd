"""Dashboard pages for background jobs."""

from flask import Blueprint, abort, current_app, jsonify, render_template, request
from sqlalchemy import select

from tracker.auth import login_required_blueprint
from tracker.batch.items import describe, items_statement, parse_outcomes
from tracker.batch.models import BatchOperation
from tracker.batch.serialize import batch_operation_summary
from tracker.extensions import db

bp = Blueprint("batch", __name__)
login_required_blueprint(bp)
RECENT = 100


@bp.get("/batch-operations")
def index():
    """List recent background jobs with status, result, progress and errors."""
    recent = db.session.scalars(
        select(BatchOperation).order_by(BatchOperation.id.desc()).limit(RECENT)
    ).all()
    return render_template("batch/index.html", operations=recent)


@bp.get("/batch-operations/<int:operation_id>")
def detail(operation_id: int):
    """Show one job: its counts, faults, and each item that failed or was
    skipped, with its error, a page at a time."""
    operation = db.get_or_404(BatchOperation, operation_id)
    outcome = request.args.get("outcome", "")
    outcomes = parse_outcomes(outcome)
    if outcomes is None:
        abort(400, description="unknown outcome")
    pagination = db.paginate(
        items_statement(operation.id, outcomes),
        per_page=current_app.config["DASHBOARD_PAGE_SIZE"],
        max_per_page=current_app.config["DASHBOARD_PAGE_SIZE"],
        error_out=False,
    )
    described = describe(
        current_app, db.session, operation.operation_type, pagination.items
    )
    return render_template(
        "batch/detail.html",
        operation=operation,
        pagination=pagination,
        described=described,
        outcome=outcome,
    )


@bp.get("/batch-operations/<int:operation_id>.json")
def progress(operation_id: int):
    """One job's status, for pages that show its progress."""
    operation = db.get_or_404(BatchOperation, operation_id)
    return jsonify(batch_operation_summary(operation))

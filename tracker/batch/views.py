"""Dashboard pages for background jobs."""

from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from tracker.api import page_within
from tracker.auth.roles import OPERATOR, VIEWER, blueprint_access
from tracker.batch import operations
from tracker.batch.items import describe, items_statement, parse_outcomes
from tracker.batch.listing import OperationQuery, operations_statement
from tracker.batch.models import STATUS_UNPROCESSED, BatchOperation
from tracker.batch.retries import QueueRefused, retrier_for
from tracker.batch.serialize import batch_operation_summary
from tracker.extensions import db

bp = Blueprint("batch", __name__)
blueprint_access(bp, read=VIEWER, write=OPERATOR)


def _page_size() -> int:
    return current_app.config["DASHBOARD_PAGE_SIZE"]


@bp.get("/batch-operations")
def index():
    """List background jobs with filters: type, status, result, dates."""
    query = OperationQuery.from_args(request.args)
    zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    pagination = page_within(operations_statement(query, zone), _page_size())
    types = db.session.scalars(
        select(BatchOperation.operation_type)
        .group_by(BatchOperation.operation_type)
        .order_by(BatchOperation.operation_type)
    ).all()
    return render_template(
        "batch/index.html",
        operations=pagination.items,
        pagination=pagination,
        query=query,
        types=types,
    )


@bp.get("/batch-operations/<int:operation_id>")
def detail(operation_id: int):
    """Show one job: its counts, input and output, faults, and each item that
    failed or was skipped, with its error, a page at a time."""
    operation = db.get_or_404(BatchOperation, operation_id)
    outcome = request.args.get("outcome", "")
    outcomes = parse_outcomes(outcome)
    if outcomes is None:
        abort(400, description=_("Unknown outcome."))
    pagination = page_within(items_statement(operation.id, outcomes), _page_size())
    described = describe(
        current_app, db.session, operation.operation_type, pagination.items
    )
    return render_template(
        "batch/detail.html",
        operation=operation,
        pagination=pagination,
        described=described,
        outcome=outcome,
        can_retry=retrier_for(current_app, operation) is not None,
        can_cancel=operation.status == STATUS_UNPROCESSED,
    )


@bp.post("/batch-operations/<int:operation_id>/retry")
def retry(operation_id: int):
    """Run again, as a new job, what failed in a failed or partial job."""
    operation = db.get_or_404(BatchOperation, operation_id)
    retrier = retrier_for(current_app, operation)
    if retrier is None:
        flash(
            _("Only a finished job that failed in part or whole can be retried."),
            "error",
        )
        return redirect(url_for("batch.detail", operation_id=operation_id))
    failed = operations.failed_item_ids(db.session, operation.id)
    try:
        retried = retrier(db.session, operation, failed, current_user.id)
    except operations.AlreadyActive as exc:
        db.session.rollback()
        flash(_("The same job is already running."), "warning")
        existing = exc.existing.id if exc.existing else operation_id
        return redirect(url_for("batch.detail", operation_id=existing))
    except QueueRefused:
        flash(_("The task queue cannot be reached; try again later."), "error")
        return redirect(url_for("batch.detail", operation_id=operation_id))
    flash(_("Retry started as job #%(id)d.", id=retried.id), "success")
    return redirect(url_for("batch.detail", operation_id=retried.id))


@bp.post("/batch-operations/<int:operation_id>/cancel")
def cancel(operation_id: int):
    """Cancel a job that no worker has started yet."""
    operation = db.get_or_404(BatchOperation, operation_id)
    if operations.cancel_unstarted(db.session, operation.id, current_user.username):
        db.session.commit()
        flash(_("Job #%(id)d cancelled.", id=operation_id), "success")
    else:
        db.session.rollback()
        flash(
            _(
                "Job #%(id)d has already started: it cannot be cancelled.",
                id=operation_id,
            ),
            "error",
        )
    return redirect(url_for("batch.detail", operation_id=operation_id))


@bp.get("/batch-operations/<int:operation_id>.json")
def progress(operation_id: int):
    """One job's status, for pages that show its progress."""
    operation = db.get_or_404(BatchOperation, operation_id)
    return jsonify(batch_operation_summary(operation))

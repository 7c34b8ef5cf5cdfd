"""Batch operations over the admin API."""

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import select

from tracker.api import invalid, paginated
from tracker.auth.roles import OPERATOR, VIEWER, blueprint_access
from tracker.batch.items import (
    OUTCOME_FILTERS,
    describe,
    item_summary,
    items_statement,
    parse_outcomes,
)
from tracker.batch.models import BatchOperation
from tracker.batch.serialize import batch_operation_summary
from tracker.extensions import csrf, db

bp = Blueprint("batch_api", __name__)
blueprint_access(bp, read=VIEWER, write=OPERATOR)
csrf.exempt(bp)


def _operation_or_404(operation_id: int) -> BatchOperation:
    return db.get_or_404(
        BatchOperation, operation_id, description="no batch operation with this id"
    )


@bp.get("/api/batch-operations/<int:operation_id>")
def show(operation_id: int):
    """Show one batch operation's status and progress."""
    return jsonify(batch_operation_summary(_operation_or_404(operation_id)))


@bp.get("/api/batch-operations/<int:operation_id>/items")
def items(operation_id: int):
    """List an operation's items with their outcome and error (by default the
    failed and skipped ones: for a crawl run, each instance down or skipped)."""
    operation = _operation_or_404(operation_id)
    outcomes = parse_outcomes(request.args.get("outcome"))
    if outcomes is None:
        raise invalid(
            "outcome",
            "must be 'all' or a comma-separated list of " + ", ".join(OUTCOME_FILTERS),
        )
    config = current_app.config
    page = paginated(
        items_statement(operation.id, outcomes),
        lambda item: item,
        config["API_PAGE_SIZE"],
        config["API_MAX_PAGE_SIZE"],
    )
    described = describe(
        current_app, db.session, operation.operation_type, page["items"]
    )
    page["items"] = [
        item_summary(item, described[item.item_id]) for item in page["items"]
    ]
    return jsonify(page)


@bp.get("/api/batch-operations")
def index():
    """List batch operations, newest first."""
    config = current_app.config
    statement = select(BatchOperation).order_by(BatchOperation.id.desc())
    return jsonify(
        paginated(
            statement,
            batch_operation_summary,
            config["API_PAGE_SIZE"],
            config["API_MAX_PAGE_SIZE"],
        )
    )

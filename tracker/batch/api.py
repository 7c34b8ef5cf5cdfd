"""Batch operations over the admin API."""

from flask import Blueprint, current_app, jsonify
from flask_login import login_required
from sqlalchemy import select

from tracker.api import paginated
from tracker.batch.models import BatchOperation
from tracker.batch.serialize import batch_operation_summary
from tracker.extensions import csrf, db

bp = Blueprint("batch_api", __name__)
csrf.exempt(bp)


@bp.get("/api/batch-operations/<int:operation_id>")
@login_required
def show(operation_id: int):
    """Show one batch operation's status and progress."""
    operation = db.get_or_404(
        BatchOperation, operation_id, description="no batch operation with this id"
    )
    return jsonify(batch_operation_summary(operation))


@bp.get("/api/batch-operations")
@login_required
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

"""Dashboard pages for background jobs."""

from flask import Blueprint, jsonify, render_template
from sqlalchemy import select

from tracker.auth import login_required_blueprint
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


@bp.get("/batch-operations/<int:operation_id>.json")
def progress(operation_id: int):
    """One job's status, for pages that show its progress."""
    operation = db.get_or_404(BatchOperation, operation_id)
    return jsonify(batch_operation_summary(operation))

"""The sync page: producers, their cursors and problems, imported files."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required

from sync.producers import all_producer_summaries
from tracker.extensions import db

bp = Blueprint("sync", __name__, template_folder="templates")


@bp.before_request
@login_required
def require_sign_in():
    """Every page of this blueprint needs a signed-in user."""


@bp.get("/sync")
def index():
    """Show every producer with its cursors, lag and problems."""
    return render_template(
        "sync/index.html", producers=all_producer_summaries(db.session)
    )

"""Dashboard pages of the instance registry."""

from flask import Blueprint, render_template
from flask_login import login_required
from sqlalchemy import func, select

from tracker.extensions import db
from tracker.instances.models import Instance

bp = Blueprint("instances", __name__)


@bp.get("/")
@login_required
def index():
    """Show the signed-in home page with the registry's counts."""
    total = db.session.scalar(select(func.count(Instance.id)))
    enabled = db.session.scalar(
        select(func.count(Instance.id)).where(Instance.enabled.is_(True))
    )
    return render_template("instances/index.html", total=total, enabled=enabled)

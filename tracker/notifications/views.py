"""The page of what was sent where, with any delivery errors."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template
from sqlalchemy import select

from tracker.auth.roles import OPERATOR, VIEWER, blueprint_access
from tracker.extensions import db
from tracker.notifications.models import Delivery, Notification, OpenAlert
from tracker.notifications.routing import destinations

bp = Blueprint("notifications", __name__)
blueprint_access(bp, read=VIEWER, write=OPERATOR)
SHOWN = 200


@bp.get("/notifications")
def index():
    """Recent notifications, each with its deliveries; the alerts still open."""
    notifications = db.session.scalars(
        select(Notification).order_by(Notification.id.desc()).limit(SHOWN)
    ).all()
    deliveries: dict[int, list[Delivery]] = {}
    for delivery in db.session.scalars(
        select(Delivery)
        .where(Delivery.notification_id.in_([n.id for n in notifications]))
        .order_by(Delivery.id)
    ):
        deliveries.setdefault(delivery.notification_id, []).append(delivery)
    return render_template(
        "notifications/index.html",
        notifications=notifications,
        deliveries=deliveries,
        open_alerts=db.session.scalars(
            select(OpenAlert).order_by(OpenAlert.opened.desc())
        ).all(),
        destinations=destinations(current_app.config),
    )

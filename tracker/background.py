"""Celery, integrated as the Flask documentation shows: tasks run in an app context.

Beat runs :class:`RecordingScheduler`, which records a periodic job that the
broker could not take as a failed batch operation naming the broker.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import celery
from celery import Celery, Task
from celery.beat import PersistentScheduler
from flask import Flask
from kombu import Queue
from kombu.utils.url import maybe_sanitize_url

from tracker.batch import operations
from tracker.batch.models import RESULT_FAILED
from tracker.extensions import db

logger = logging.getLogger(__name__)
SCHEDULER = "tracker.background:RecordingScheduler"
PERIODIC_OPERATIONS_KEY = "tracker.periodic_operations"
# The operation a periodic job records when no part named one.
PERIODIC_OPERATION = "periodic"
REDIS_SCHEMES = ("redis", "rediss", "redis+socket")
# Seconds between the Redis transport's sweeps for unacknowledged messages.
RESTORE_SWEEP_SECONDS = 10
# Periodic and short jobs; long work a part routes to a queue of its own
# (route_task) so that they never wait behind it.
DEFAULT_QUEUE = "celery"


def embedded_broker(instance_path: str) -> tuple[str, dict[str, Any]]:
    """A broker that needs no server: message files in the instance folder."""
    root = Path(instance_path) / "broker"
    folders = {name: root / name for name in ("queue", "processed", "control")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return "filesystem://", {
        "data_folder_in": str(folders["queue"]),
        "data_folder_out": str(folders["queue"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
        "store_processed": False,
    }


def configured_schedule(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The entries CELERYBEAT_SCHEDULE adds or changes (None switches one off).

    Each part of the application adds its own periodic jobs with
    :func:`add_periodic_task`, which leaves the entries named here alone.
    """
    schedule = config.get("CELERYBEAT_SCHEDULE") or {}
    return {name: entry for name, entry in schedule.items() if entry is not None}


def celery_config(app: Flask) -> dict[str, Any]:
    config = app.config
    settings: dict[str, Any] = {
        "task_ignore_result": True,
        "result_backend": None,
        "timezone": "UTC",
        "beat_schedule": configured_schedule(config),
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "beat_scheduler": SCHEDULER,
        "task_default_queue": DEFAULT_QUEUE,
        "task_queues": (Queue(DEFAULT_QUEUE),),
        "task_routes": {},
    }
    if config["CELERY_BROKER_URL"]:
        settings["broker_url"] = config["CELERY_BROKER_URL"]
    else:
        url, options = embedded_broker(app.instance_path)
        settings["broker_url"] = url
        settings["broker_transport_options"] = options
    # Any other CELERY_<OPTION> setting is passed on as Celery's <option>.
    for key, value in config.items():
        if key.startswith("CELERY_") and key != "CELERY_BROKER_URL":
            settings[key.removeprefix("CELERY_").lower()] = value
    return settings


def celery_init_app(app: Flask) -> Celery:
    """Create the app's Celery, whose tasks each run inside an application context."""

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.conf.update(celery_config(app))
    celery_app.set_default()
    # Beat's scheduler records what it could not send in this app's database.
    celery_app.flask_app = app
    app.extensions["celery"] = celery_app
    return celery_app


def add_periodic_task(
    app: Flask,
    name: str,
    task: str,
    seconds: float,
    operation: tuple[str, str] | None = None,
) -> None:
    """Schedule a domain's periodic job, unless CELERYBEAT_SCHEDULE names it
    (to change it, or to switch it off with None). A tick the broker cannot
    take is recorded as a failed ``operation`` (type, scope)."""
    app.extensions.setdefault(PERIODIC_OPERATIONS_KEY, {})[name] = operation or (
        PERIODIC_OPERATION,
        name,
    )
    if name in (app.config.get("CELERYBEAT_SCHEDULE") or {}):
        return
    app.extensions["celery"].conf.beat_schedule[name] = {
        "task": task,
        "schedule": seconds,
    }


def route_task(app: Flask, task: str, queue: str) -> None:
    """Send ``task`` to ``queue``, which every worker consumes unless started
    with ``--queues`` (unless CELERY_TASK_ROUTES routes it already)."""
    conf = app.extensions["celery"].conf
    routes = dict(conf.task_routes or {})
    routes.setdefault(task, {"queue": queue})
    conf.task_routes = routes
    if queue not in queue_names(app.extensions["celery"]):
        conf.task_queues = (*conf.task_queues, Queue(queue))


def queue_names(celery_app: Celery) -> list[str]:
    """The queues a worker consumes by default: all of them."""
    return [queue.name for queue in celery_app.conf.task_queues or ()] or [
        DEFAULT_QUEUE
    ]


def broker_fault(exc: BaseException, celery_app: Celery | None = None) -> str:
    """Name a broker failure and the broker (without its password)."""
    url = (celery_app or celery.current_app).conf.broker_url or ""
    return f"broker lost: {maybe_sanitize_url(url)} could not take the task: {exc}"


def require_visibility_timeout(app: Flask, seconds: float) -> None:
    """Make a Redis broker hand an unacknowledged task (its worker died) to
    another worker after ``seconds``, unless CELERY_BROKER_TRANSPORT_OPTIONS
    sets ``visibility_timeout`` itself. The longest requirement wins."""
    conf = app.extensions["celery"].conf
    if (conf.broker_url or "").split("://", 1)[0] not in REDIS_SCHEMES:
        return
    configured = app.config.get("CELERY_BROKER_TRANSPORT_OPTIONS") or {}
    if "visibility_timeout" in configured:
        return
    options = dict(conf.broker_transport_options or {})
    required = math.ceil(seconds)
    options["visibility_timeout"] = max(options.get("visibility_timeout", 0), required)
    # Sweep for such tasks every few seconds, not every tenth sweep.
    options.setdefault("unacked_restore_throttle", 1)
    options.setdefault(
        "unacked_restore_interval", min(RESTORE_SWEEP_SECONDS, max(1, required // 4))
    )
    conf.broker_transport_options = options


def record_unsent(flask_app: Flask, entry_name: str, fault: str) -> None:
    """Record a periodic job the broker could not take as a failed operation."""
    operation_type, scope = flask_app.extensions.get(PERIODIC_OPERATIONS_KEY, {}).get(
        entry_name, (PERIODIC_OPERATION, entry_name)
    )
    with flask_app.app_context():
        try:
            operations.record_skipped(
                db.session,
                operation_type,
                scope,
                f"not started: the {entry_name!r} tick was not sent; {fault}",
                result=RESULT_FAILED,
            )
            db.session.commit()
        except Exception:  # the database may be down too: the log keeps it
            db.session.rollback()
            logger.exception("could not record the unsent tick of %s", entry_name)


class RecordingScheduler(PersistentScheduler):
    """Celery beat's scheduler, which also records ticks it could not send."""

    def apply_entry(self, entry, producer=None):
        logger.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
        try:
            self.apply_async(entry, producer=producer, advance=False)
        except Exception as exc:  # the broker could not take it
            logger.error("Message Error: %s", exc, exc_info=True)
            cause = exc.__cause__ or exc.__context__ or exc
            flask_app = getattr(self.app, "flask_app", None)
            if flask_app is not None:
                record_unsent(flask_app, entry.name, broker_fault(cause, self.app))

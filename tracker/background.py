"""Celery, integrated as the Flask documentation shows: tasks run in an app context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery, Task
from flask import Flask


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
    app.extensions["celery"] = celery_app
    return celery_app


def add_periodic_task(app: Flask, name: str, task: str, seconds: float) -> None:
    """Schedule a domain's periodic job, unless CELERYBEAT_SCHEDULE names it
    (to change it, or to switch it off with None)."""
    if name in (app.config.get("CELERYBEAT_SCHEDULE") or {}):
        return
    app.extensions["celery"].conf.beat_schedule[name] = {
        "task": task,
        "schedule": seconds,
    }

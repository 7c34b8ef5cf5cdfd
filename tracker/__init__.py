"""Instance Tracker: look after a fleet of mostly-offline deployments."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from tracker import sqlite_writers
from tracker.api import refuse_unbounded_page_args
from tracker.db_types import VERSION_KEY_FUNCTION, dumps_json, loads_json, version_key
from tracker.extensions import babel, csrf, db, limiter, migrate
from tracker.notifications.settings import CHECKS as NOTIFICATION_CHECKS
from tracker.notifications.settings import SETTINGS as NOTIFICATION_SETTINGS
from tracker.settings import (
    CORE_CHECKS,
    CORE_SETTINGS,
    REGISTRY,
    CrossCheck,
    Setting,
    SettingsError,
    SettingsLayers,
    keep_private,
    persistent_secret_key,
    validate,
)

MIGRATIONS_DIRECTORY = str(Path(__file__).with_name("migrations"))


def create_app(
    overrides: Mapping[str, Any] | None = None,
    instance_path: str | os.PathLike | None = None,
    environ: Mapping[str, str] | None = None,
) -> Flask:
    """Build the application from settings layered over the built-in defaults."""
    environ = os.environ if environ is None else environ
    instance_path = instance_path or environ.get("TRACKER_INSTANCE_PATH")
    app = Flask(
        __name__,
        instance_path=str(Path(instance_path).resolve()) if instance_path else None,
    )
    _writable_instance_folder(Path(app.instance_path))

    layers = SettingsLayers.read(environ, overrides)
    # The registry is always on; the other domains as DOMAINS says.
    parts = [importlib.import_module(name) for name in (REGISTRY, *layers.domains())]
    specs: list[Setting] = [*CORE_SETTINGS, *NOTIFICATION_SETTINGS]
    checks: list[CrossCheck] = [*CORE_CHECKS, *NOTIFICATION_CHECKS]
    for part in parts:
        part_settings = importlib.import_module(f"{part.__name__}.settings")
        specs.extend(part_settings.SETTINGS)
        checks.extend(getattr(part_settings, "CHECKS", ()))
    app.config.update(validate(layers.merged(specs), specs, checks))
    layers.check_secret_key(app.config["SECRET_KEY"])
    _apply_embedded_defaults(app)

    # Ids in URLs above what the database holds are a 404, not an overflow.
    app.url_map.converters["int"] = DatabaseIntConverter
    db.init_app(app)
    _tune_sqlite(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIRECTORY)
    csrf.init_app(app)
    babel.init_app(app)
    limiter.init_app(app)
    _limit_only_decorated_views(app)
    if app.config["TRUSTED_PROXIES"]:
        # The client's address and scheme as the reverse proxies in front saw them.
        proxies = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)

    from tracker import (
        audit,
        auth,
        batch,
        errors,
        housekeeping,
        monitoring,
        notifications,
        openapi,
        security,
        templating,
    )
    from tracker.background import celery_init_app

    celery_init_app(app)
    errors.register_error_handlers(app)
    app.before_request(refuse_unbounded_page_args)
    templating.init_app(app)
    auth.init_app(app)
    audit.init_app(app)
    batch.init_app(app)
    housekeeping.init_app(app)
    openapi.init_app(app)
    monitoring.init_app(app)
    security.init_app(app)
    notifications.init_app(app)
    for part in parts:
        part.init_app(app)
    return app


def _writable_instance_folder(folder: Path) -> None:
    """Make the instance folder (private) or stop with one line naming it: it
    holds the embedded database, broker and key."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(
            f"instance folder {folder}: cannot be created ({exc.strerror}); set "
            "TRACKER_INSTANCE_PATH to a folder this user may write"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SettingsError(
            f"instance folder {folder}: not writable by this user; set "
            "TRACKER_INSTANCE_PATH to a folder this user may write"
        )
    keep_private(folder, 0o700)


class DatabaseIntConverter(IntegerConverter):
    """``<int:...>`` limited to the 32-bit ids every database here stores."""

    def __init__(self, url_map, *args, **kwargs) -> None:
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


LIMITS_FOR_EVERY_REQUEST = (
    "RATELIMIT_DEFAULT",
    "RATELIMIT_APPLICATION",
    "RATELIMIT_META",
)


def _limit_only_decorated_views(app: Flask) -> None:
    """Unless limits for every request are configured, drop Flask-Limiter's
    check before every request: the views with limits check their own in
    their decorators, and the check found nothing to do for the others at a
    third of a GET's cost."""
    if any(app.config.get(name) for name in LIMITS_FOR_EVERY_REQUEST):
        return
    hooks = app.before_request_funcs.get(None, [])
    hooks[:] = [hook for hook in hooks if hook != limiter._check_request_limit]


POOL_DEFAULTS = {"pool_size": 16, "max_overflow": 8}


def _apply_embedded_defaults(app: Flask) -> None:
    """Fill in what a fresh install has no settings file for."""
    instance = Path(app.instance_path)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = persistent_secret_key(instance)
    if not app.config["SQLALCHEMY_DATABASE_URI"]:
        app.config["SQLALCHEMY_DATABASE_URI"] = (
            f"sqlite:///{instance / 'tracker.sqlite'}"
        )
    # Pooled connections are tested before use: after a database restart no
    # request fails on a connection the server has already closed (a SQLite
    # file has no server to restart).
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
    app.config["SQLALCHEMY_ENGINE_OPTIONS"].setdefault(
        "pool_pre_ping", not uri.startswith("sqlite")
    )
    # JSON columns (crawled values, history) written and read by orjson.
    app.config["SQLALCHEMY_ENGINE_OPTIONS"].setdefault("json_serializer", dumps_json)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"].setdefault("json_deserializer", loads_json)
    if ":memory:" not in uri and "mode=memory" not in uri:
        # As many kept connections as a process has busy threads: past the pool
        # size, each request would open a connection and close it after.
        for name, value in POOL_DEFAULTS.items():
            app.config["SQLALCHEMY_ENGINE_OPTIONS"].setdefault(name, value)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    # Rate-limit counters: shared through Redis when the broker is Redis (every
    # web process counts together), in memory on the embedded defaults.
    broker = app.config["CELERY_BROKER_URL"] or ""
    app.config.setdefault(
        "RATELIMIT_STORAGE_URI",
        broker if broker.startswith(("redis://", "rediss://")) else "memory://",
    )
    # With Redis away, limits are counted in memory rather than failing requests.
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)


def _sqlite_pragmas(database_file: Path | None):
    def set_pragmas(dbapi_connection, record) -> None:
        if database_file is not None:
            # The file holds password hashes and encrypted secrets: owner only
            # (its -wal and -shm files take the same permissions).
            for suffix in ("", "-wal", "-shm"):
                keep_private(Path(f"{database_file}{suffix}"), 0o600)
        _set_sqlite_pragmas(dbapi_connection, record)

    return set_pragmas


def _set_sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers work while one writer commits; the busy timeout makes
    # concurrent writers (web threads, workers) wait instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL syncs at checkpoints, not at every commit: the file
    # cannot be corrupted by a crash, and a commit no longer waits for the
    # disk (a power cut may lose the last commits before a checkpoint).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # Sorting version-like values as versions needs a function SQLite lacks.
    dbapi_connection.create_function(
        VERSION_KEY_FUNCTION, 1, version_key, deterministic=True
    )


def _tune_sqlite(app: Flask) -> None:
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            name = db.engine.url.database
            database_file = (
                Path(name)
                if name and name != ":memory:" and "mode=memory" not in name
                else None
            )
            event.listen(db.engine, "connect", _sqlite_pragmas(database_file))
            app.extensions[sqlite_writers.EXTENSION] = sqlite_writers.install(
                db.engine, database_file
            )

"""The sync server under test: its database, its producers, gunicorn, the checks."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from bench.api.servers import (
    SECRET_KEY,
    Server,
    app_environment,
    free_port,
    server_command,
    stop_process_group,
    wait_ready,
)
from bench.sync.workload import MODELS, Expected
from sync.models import (
    APPLIED,
    IncomingTransaction,
    RejectedTransaction,
    SyncProducer,
    SyncRecord,
)
from sync.producers import register_producer
from tracker import create_app
from tracker.extensions import db
from tracker.models import import_all_models

GUNICORN_TIMEOUT = 600


def server_settings(database_url: str) -> dict[str, Any]:
    """The settings every app of a run uses, in-process or under gunicorn."""
    return {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": SECRET_KEY,
        "SYNC_MODELS": MODELS,
    }


def server_app(database_url: str, instance_path: Path) -> Flask:
    """The tracker on DATABASE_URL with every table created."""
    app = create_app(
        server_settings(database_url), instance_path=instance_path, environ={}
    )
    with app.app_context():
        import_all_models()
        db.create_all()
    return app


def close_app(app: Flask) -> None:
    """Return every pooled connection, so the database can be dropped or reused."""
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def register_producers(app: Flask, public_keys: dict[str, str]) -> None:
    """Register each producer with the public key of its credential."""
    with app.app_context():
        for producer_id, public_key in public_keys.items():
            register_producer(db.session, producer_id, public_key=public_key)
        db.session.commit()
        db.session.remove()


def applied_through(app: Flask) -> dict[str, int]:
    """Each producer's applied cursor."""
    with app.app_context():
        cursors = dict(
            db.session.execute(
                select(SyncProducer.producer_id, SyncProducer.applied_through)
            ).all()
        )
        db.session.remove()
    return cursors


def database_state(app: Flask, incoming: bool = True) -> dict[str, Any]:
    """What the server holds: cursors, statuses, rejections and records."""
    with app.app_context():
        session = db.session
        state: dict[str, Any] = {
            "applied_through": dict(
                session.execute(
                    select(SyncProducer.producer_id, SyncProducer.applied_through)
                ).all()
            ),
            "received_through": dict(
                session.execute(
                    select(SyncProducer.producer_id, SyncProducer.received_through)
                ).all()
            ),
            "statuses": {},
            "rejected": 0,
        }
        if incoming:
            state["statuses"] = dict(
                session.execute(
                    select(IncomingTransaction.status, func.count()).group_by(
                        IncomingTransaction.status
                    )
                ).all()
            )
            state["rejected"] = session.scalar(
                select(func.count()).select_from(RejectedTransaction)
            )
        table = SyncRecord.__table__
        state["records"] = {
            (row.model, row.natural_key): (row.fields, row.version)
            for row in session.execute(
                select(
                    table.c.model, table.c.natural_key, table.c.fields, table.c.version
                ).where(table.c.deleted.is_(None))  # not the deleted (tombstones)
            )
        }
        session.remove()
    return state


def check_state(
    state: dict[str, Any], expected: Expected, incoming: bool = True
) -> list[str]:
    """What differs from the expected outcome (empty: all applied exactly once)."""
    problems = []
    for producer, through in expected.through.items():
        got = state["applied_through"].get(producer)
        if got != through:
            problems.append(f"{producer} applied through {got}, expected {through}")
    if incoming:
        total = sum(expected.through.values())
        statuses = state["statuses"]
        if statuses.get(APPLIED, 0) != total or sum(statuses.values()) != total:
            problems.append(f"statuses {statuses}, expected {total} applied")
        if state["rejected"]:
            problems.append(f"{state['rejected']} rejected transactions")
    records = state["records"]
    if len(records) != len(expected.records):
        problems.append(f"{len(records)} records, expected {len(expected.records)}")
    wrong = [
        key
        for key, (fields, version) in expected.records.items()
        if records.get(key) != (fields, version)
    ]
    if wrong:
        model, natural_key = wrong[0]
        problems.append(
            f"{len(wrong)} records differ or are missing, e.g. {model} {natural_key}:"
            f" {records.get(wrong[0])} != {expected.records[wrong[0]]}"
        )
    return problems


@contextmanager
def serving(
    database_url: str, instance_path: Path, workdir: Path, workers: int
) -> Iterator[Server]:
    """Serve the app under gunicorn until the block ends; stop it and its workers."""
    env = app_environment(database_url, instance_path)
    env["TRACKER_SYNC_MODELS"] = json.dumps(MODELS)
    port = free_port()
    log = workdir / "gunicorn.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            server_command("sync", port, workers, GUNICORN_TIMEOUT),
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server("gunicorn", port, process, log)
    try:
        wait_ready(server)
        yield server
    finally:
        stop_process_group(process)

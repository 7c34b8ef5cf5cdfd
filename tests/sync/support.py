"""Shared pieces of the sync tests: transports, registration, reading records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from sync.client.relay import store_producer_keys
from sync.client.transfer import Retry, Unreachable
from sync.models import SyncProducer, SyncRecord
from sync.producers import producer_detail, register_producer
from sync.wire.bundles import plain_transaction
from sync.wire.payloads import canonical_json, json_value
from tests.sync.field_app import Household, Member, RelayedBundle, field_db
from tracker.extensions import db

FIELD_MODELS = ["Household", "Member"]
CREATED = datetime(2026, 11, 1, 10, tzinfo=UTC)
NO_WAIT = Retry(attempts=3, first_delay=0, max_delay=0, sleep=lambda _: None)


class AppTransport:
    """Posts to a Flask app in-process; ``lose_replies`` drops the next answers
    after the receiver has processed them, like a connection cut on the way back."""

    def __init__(self, app) -> None:
        self.client = app.test_client()
        self.lose_replies = 0
        self.posts = 0

    def post(self, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.posts += 1
        path = url.split("://", 1)[-1]
        path = path[path.index("/") :] if "/" in path else "/"
        response = self.client.post(path, json=body)
        if self.lose_replies:
            self.lose_replies -= 1
            raise Unreachable("the reply was lost")
        return response.status_code, response.get_json(silent=True) or {}


def register(server_app, producer_id: str, encrypt: bool = False):
    """Register a producer on the server; return (credential, encryption key)."""
    with server_app.app_context():
        _, credential, key = register_producer(db.session, producer_id, encrypt=encrypt)
        db.session.commit()
    return credential, key


def server_records(server_app) -> dict[tuple[str, str], dict]:
    """Every record on the server: (model, natural key JSON) -> fields."""
    with server_app.app_context():
        return {
            (row.model, row.natural_key): row.fields
            for row in db.session.scalars(
                select(SyncRecord).where(SyncRecord.deleted.is_(None))
            )
        }


def field_records(field_app) -> dict[tuple[str, str], dict]:
    """Every synchronised record of a field client, as the server should hold it
    (without the device's local primary key)."""
    records = {}
    with field_app.app_context():
        for model in (Household, Member):
            mapper = model.__mapper__
            columns = [
                prop.key
                for prop in mapper.column_attrs
                if not any(column.primary_key for column in prop.columns)
            ]
            for row in field_db.session.scalars(select(model)):
                key = canonical_json(
                    [json_value(getattr(row, n)) for n in model.__natural_key__]
                )
                records[(model.__name__, key)] = {
                    name: json_value(getattr(row, name)) for name in columns
                }
        field_db.session.remove()
    return records


def wire(
    producer: str,
    sequence: int,
    model: str,
    natural_key: list,
    action: str,
    fields: dict,
    parents: dict | None = None,
    made: datetime = CREATED,
) -> dict[str, Any]:
    """A wire transaction built by hand, as a device would send it; ``made`` is
    the device's clock when it made the change."""
    payload = {"schema_version": 1, "fields": fields, "parents": parents or {}}
    return plain_transaction(
        producer, sequence, model, natural_key, action, payload, made
    )


def producer_state(server_app, producer_id: str) -> dict[str, Any]:
    with server_app.app_context():
        producer = db.session.scalar(
            select(SyncProducer).where(SyncProducer.producer_id == producer_id)
        )
        return producer_detail(db.session, producer)


def publish_keys(server_app, relay_app) -> None:
    """Give the middleman the server's producer list, as ``flask relay keys``."""
    with server_app.app_context():
        items = [
            {"producer_id": p.producer_id, "public_key": p.public_key}
            for p in db.session.scalars(select(SyncProducer))
        ]
    with relay_app.app_context():
        store_producer_keys(field_db.session, RelayedBundle, items)
        field_db.session.commit()
        field_db.session.remove()

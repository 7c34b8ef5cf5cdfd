"""A small field application that embeds the sync toolkit, as a real one would."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, Numeric, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sync.client import SyncMixin, configure_producer, sync_models
from sync.client.cli import client_cli, relay_cli
from sync.client.relay import make_relay_blueprint, relay_models


class Base(DeclarativeBase):
    pass


field_db = SQLAlchemy(model_class=Base)
OutgoingTransaction, ProducerState = sync_models(field_db.Model, field_db.session)
RelayedBundle = relay_models(field_db.Model)


class Household(SyncMixin, field_db.Model):
    __tablename__ = "households"
    __natural_key__ = ("code",)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    village: Mapped[str] = mapped_column(String(100), default="")
    income: Mapped[Decimal | None] = mapped_column(Numeric(10, 2), nullable=True)
    enumerated: Mapped[date | None] = mapped_column(nullable=True)


class Member(SyncMixin, field_db.Model):
    __tablename__ = "members"
    __natural_key__ = ("identifier",)
    sync_schema_version = 2

    id: Mapped[int] = mapped_column(primary_key=True)
    identifier: Mapped[str] = mapped_column(String(20), unique=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"))
    name: Mapped[str] = mapped_column(String(100), default="")
    seen: Mapped[datetime | None] = mapped_column(nullable=True)


def _base_app(name: str, database_url: str) -> Flask:
    app = Flask(name)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    if database_url.startswith("sqlite"):
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30}}
    field_db.init_app(app)
    with app.app_context():
        field_db.create_all()
    return app


def create_field_app(
    database_url: str,
    producer_id: str,
    encryption_key: str | None = None,
    credential: str | None = None,
) -> Flask:
    """A field client: households and members, recorded for sync."""
    app = _base_app(f"field-{producer_id}", database_url)
    app.cli.add_command(client_cli(field_db, OutgoingTransaction, ProducerState))
    with app.app_context():
        configure_producer(
            field_db.session, ProducerState, producer_id, encryption_key, credential
        )
        field_db.session.commit()
    return app


def create_relay_app(database_url: str) -> Flask:
    """A middleman: keeps pushed or carried bundles and forwards them."""
    app = _base_app("relay", database_url)
    app.register_blueprint(make_relay_blueprint(field_db, RelayedBundle))
    app.cli.add_command(relay_cli(field_db, RelayedBundle))
    return app

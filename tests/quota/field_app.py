"""A small field application that embeds the quota toolkit, as a real one would.

python -m tests.quota.field_app DATABASE_URL NAME SECRET HOST PORT
"""

from __future__ import annotations

import sys

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from quota.client import QuotaMixin, checkin_cli, make_blueprint, quota_models


class Base(DeclarativeBase):
    pass


field_db = SQLAlchemy(model_class=Base)
Quota, QuotaOverride = quota_models(field_db.Model)


class Visit(QuotaMixin, field_db.Model):
    __tablename__ = "visits"
    quota_kind = "visit"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(default="")


def create_field_app(database_url: str, name: str, secret: str) -> Flask:
    app = Flask(f"field-{name}")
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    if database_url.startswith("sqlite"):
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30}}
    field_db.init_app(app)
    app.register_blueprint(
        make_blueprint(
            lambda: field_db.session,
            Quota,
            QuotaOverride,
            name,
            secret,
            kinds={"visit"},
        )
    )
    app.cli.add_command(
        checkin_cli(
            lambda: field_db.session, Quota, QuotaOverride, name, secret, ["visit"]
        )
    )
    with app.app_context():
        field_db.create_all()
    return app


if __name__ == "__main__":
    url, client_name, client_secret, host, port = sys.argv[1:6]
    create_field_app(url, client_name, client_secret).run(host=host, port=int(port))

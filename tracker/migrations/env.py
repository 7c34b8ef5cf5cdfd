"""Alembic environment, run through Flask-Migrate inside an application context."""

import logging

from alembic import context
from flask import current_app

logger = logging.getLogger("alembic.env")
config = context.config
database = current_app.extensions["migrate"].db


def include_all_models() -> None:
    # Autogenerate compares against every domain's tables, loaded or not.
    from tracker.models import import_all_models

    import_all_models()


def run_migrations_offline() -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    context.configure(
        url=url,
        target_metadata=database.metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    def skip_empty_revision(context_, revision, directives):
        if getattr(config.cmd_opts, "autogenerate", False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info("No changes in schema detected.")

    conf_args = dict(current_app.extensions["migrate"].configure_args)
    conf_args.setdefault("process_revision_directives", skip_empty_revision)
    # SQLite cannot ALTER most things; batch mode copies the table instead.
    conf_args.setdefault("render_as_batch", True)
    with database.engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode drops and re-creates a table: with foreign keys on,
            # that would cascade to every row referring to it (tokens and
            # sessions of users, for one). Off for the migration, then checked.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(
            connection=connection, target_metadata=database.metadata, **conf_args
        )
        with context.begin_transaction():
            context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            if broken:
                raise RuntimeError(f"rows refer to missing rows: {broken[:5]}")


include_all_models()
if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

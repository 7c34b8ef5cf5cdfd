"""``manage.py``: the command line over the application factory."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from flask_migrate import stamp, upgrade
from sqlalchemy import func, select, text
from werkzeug.serving import WSGIRequestHandler, run_simple

from tracker.models import import_all_models
from tracker.redaction import mask_uuids
from tracker.settings import SettingsError

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,80}$")


def _create_app_or_exit():
    from tracker import create_app

    try:
        return create_app()
    except SettingsError as exc:
        raise click.ClickException(f"settings: {exc}") from None


cli = FlaskGroup(
    create_app=_create_app_or_exit,
    add_default_commands=False,
    add_version_option=False,
    load_dotenv=False,
    set_debug_flag=False,
    help="Manage the Instance Tracker.",
)


# --- database ---


@cli.group()
def db():
    """Create, drop and migrate the database."""


def _drop_everything() -> None:
    from tracker.extensions import db as database

    database.drop_all()
    with database.engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))


def _create_everything() -> None:
    from tracker.extensions import db as database

    import_all_models()
    database.create_all()
    stamp(directory=current_app.extensions["migrate"].directory)


@db.command("drop")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def db_drop(yes: bool) -> None:
    """Drop every table (asks first)."""
    if not yes:
        click.confirm("Drop every table and lose all data?", abort=True)
    import_all_models()
    _drop_everything()
    click.echo("Dropped every table.")


@db.command("create")
@with_appcontext
def db_create() -> None:
    """Create every table for a fresh install and mark it as migrated."""
    _create_everything()
    click.echo("Created the tables.")


@db.command("recreate")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def db_recreate(yes: bool) -> None:
    """Drop every table and create them again (asks first)."""
    if not yes:
        click.confirm("Drop every table and lose all data?", abort=True)
    import_all_models()
    _drop_everything()
    _create_everything()
    click.echo("Recreated the tables.")


@db.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the latest), keeping the data."""
    upgrade(directory=current_app.extensions["migrate"].directory, revision=revision)
    click.echo("The database is up to date.")


@db.command("revision")
@click.option("-m", "--message", required=True, help="What the migration does.")
@with_appcontext
def db_revision(message: str) -> None:
    """Write a new migration from the models' changes (for developers)."""
    from flask_migrate import revision

    import_all_models()
    revision(
        directory=current_app.extensions["migrate"].directory,
        message=message,
        autogenerate=True,
    )


# --- users and tokens ---


def _add_user(username: str, password: str):
    from tracker.auth.models import User
    from tracker.extensions import db as database

    if not USERNAME_PATTERN.match(username):
        raise click.BadParameter(
            "use 1 to 80 letters, digits or . _ @ -", param_hint="USERNAME"
        )
    if not password:
        raise click.BadParameter("must not be empty", param_hint="PASSWORD")
    exists = database.session.scalar(select(User.id).where(User.username == username))
    if exists is not None:
        raise click.ClickException(f"user {username!r} already exists")
    user = User(username=username)
    user.set_password(password)
    database.session.add(user)
    database.session.commit()
    return user


@click.command("create_usr")
@click.argument("username")
@click.argument("password", required=False)
@with_appcontext
def create_user(username: str, password: str | None) -> None:
    """Create a dashboard user; prompts for PASSWORD when it is left out."""
    if password is None:
        if not sys.stdin.isatty():
            raise click.UsageError("PASSWORD missing and no terminal to ask for it")
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    _add_user(username, password)
    click.echo(f"Created user {username}.")


cli.add_command(create_user, "create_usr")
# The original tool spelled it create_user; both names work.
cli.add_command(create_user, "create_user")


@cli.command("create-token")
@click.argument("username")
@click.option("--name", default="", help="A note saying what the token is for.")
@with_appcontext
def create_token(username: str, name: str) -> None:
    """Issue an API token for USERNAME and print it once."""
    from tracker.auth.models import User
    from tracker.auth.tokens import issue_token
    from tracker.extensions import db as database

    user = database.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise click.ClickException(f"no user {username!r}")
    token = issue_token(database.session, user, name)
    database.session.commit()
    click.echo(token)


# --- serving ---


class RedactingRequestHandler(WSGIRequestHandler):
    """Request log lines with instance uuids (credentials) masked."""

    def log(self, type: str, message: str, *args: object) -> None:
        # Every line (requests and errors) passes here, its path already decoded.
        text = message % args if args else message
        super().log(type, "%s", mask_uuids(text))


def _ensure_first_user() -> None:
    from tracker.auth.models import User
    from tracker.extensions import db as database

    if database.session.scalar(select(func.count(User.id))):
        return
    password = secrets.token_urlsafe(12)
    _add_user("admin", password)
    click.echo(
        f"Created the first user: admin / {password}  (change it after signing in)"
    )


def _celery_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "tracker.worker", *args]


def _celery_environment() -> dict[str, str]:
    """This process's environment, with the same code and instance folder."""
    source_root = str(Path(__file__).resolve().parents[1])
    paths = [source_root, *filter(None, [os.environ.get("PYTHONPATH")])]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(paths),
        "TRACKER_INSTANCE_PATH": current_app.instance_path,
    }


def _beat_schedule_file() -> str:
    return str(Path(current_app.instance_path) / "celerybeat-schedule")


@cli.command("runworker")
@click.argument("concurrency", required=False, type=click.IntRange(1, 256))
@with_appcontext
def runworker(concurrency: int | None) -> None:
    """Run a Celery worker with CONCURRENCY processes (default: one per core)."""
    args = ["worker", "--loglevel=info", "--without-gossip", "--without-mingle"]
    if concurrency:
        args.append(f"--concurrency={concurrency}")
    os.execve(sys.executable, _celery_command(*args), _celery_environment())


@cli.command("runbeat")
@with_appcontext
def runbeat() -> None:
    """Run Celery beat, the scheduler of periodic jobs (run exactly one)."""
    os.execve(
        sys.executable,
        _celery_command("beat", "--loglevel=info", "-s", _beat_schedule_file()),
        _celery_environment(),
    )


@cli.command("run")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on."
)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--no-worker", is_flag=True, help="Serve the web pages only.")
@with_appcontext
def run(host: str, port: int, no_worker: bool) -> None:
    """Set up the database and run web, worker and beat together."""
    upgrade(directory=current_app.extensions["migrate"].directory)
    _ensure_first_user()
    worker = None
    if not no_worker:
        # One worker process that also runs beat: enough for the embedded setup.
        worker = subprocess.Popen(
            _celery_command(
                "worker",
                "--beat",
                "--concurrency=2",
                "--loglevel=info",
                "--without-gossip",
                "--without-mingle",
                "-s",
                _beat_schedule_file(),
            ),
            env=_celery_environment(),
        )
    click.echo(f"Instance Tracker on http://{host}:{port}/  (Ctrl+C stops it)")
    # SIGTERM (a service manager stopping us) must also stop the worker.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        run_simple(
            host,
            port,
            current_app._get_current_object(),
            threaded=True,
            request_handler=RedactingRequestHandler,
        )
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()


def main() -> None:
    cli.main(prog_name="manage.py")

"""``manage.py``: the command line over the application factory."""

from __future__ import annotations

import ctypes
import os
import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import FlaskGroup, ScriptInfo, with_appcontext
from flask_migrate import stamp, upgrade
from sqlalchemy import func, select, text
from werkzeug.serving import WSGIRequestHandler, run_simple

from tracker.models import import_all_models
from tracker.redaction import mask_uuids
from tracker.settings import SettingsError


def _create_app_or_exit():
    from tracker import create_app
    from tracker.audit.trail import act_for_commands

    try:
        app = create_app()
    except SettingsError as exc:
        raise click.ClickException(f"settings: {exc}") from None
    act_for_commands(app)
    return app


class ProductGroup(FlaskGroup):
    """Flask's command group showing only this product's commands and options:
    not Flask's -e/-A/--debug, nor commands that installed extensions plug in
    (Flask-Limiter's ``limiter``)."""

    FLASK_OPTIONS = ("env_file", "app", "debug")

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.params = [p for p in self.params if p.name not in self.FLASK_OPTIONS]

    def _load_plugin_commands(self) -> None:
        """Load no ``flask.commands`` entry points."""

    def invoke(self, ctx: click.Context):
        # The words still to parse: the command's names, its options, values
        # (Click 8.2 keeps the first word apart, as ``_protected_args``).
        words = [*vars(ctx).get("_protected_args", ()), *ctx.args]
        result = super().invoke(ctx)
        app = ctx.ensure_object(ScriptInfo)._loaded_app
        if app is not None:
            from tracker.audit.trail import record_unaudited_command

            shown = _command_words(ctx, self, words)
            domain = COMMAND_DOMAINS.get(shown[0] if shown else "", "tracker")
            record_unaudited_command(app, shown, domain)
        return result


COMMAND_DOMAINS = {
    "quota": "quota",
    "sync": "sync",
    "allocation": "allocation",
    "crawl": "instances",
}


def _command_words(ctx: click.Context, group: click.Group, words: list[str]):
    """A command line as the audit trail keeps it: the command's names and
    the options given, never their values (a value may be a secret)."""
    shown: list[str] = []
    command: click.Command | None = group
    for word in words:
        named = (
            command.get_command(ctx, word)
            if isinstance(command, click.Group) and not word.startswith("-")
            else None
        )
        if named is not None:
            command = named
            shown.append(word)
        elif word.startswith("-"):
            shown.append(word.partition("=")[0])
    return shown


cli = ProductGroup(
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


@db.command("downgrade")
@click.argument("revision", default="-1")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def db_downgrade(revision: str, yes: bool) -> None:
    """Undo migrations down to REVISION (default: the last one applied; "base"
    undoes them all). What the undone migrations added is lost (asks first)."""
    from flask_migrate import downgrade

    if not yes:
        click.confirm(
            f"Downgrade the database to {revision} and lose what later "
            "migrations added?",
            abort=True,
        )
    downgrade(directory=current_app.extensions["migrate"].directory, revision=revision)
    click.echo(f"The database is at {revision}.")


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


def _check_new_password(password: str) -> None:
    from tracker.auth.accounts import password_problem

    problem = password_problem(password, current_app.config["PASSWORD_MIN_LENGTH"])
    if problem is not None:
        raise click.ClickException(f"password {problem} (PASSWORD_MIN_LENGTH)")


def _read_new_password() -> str:
    """Ask twice on a terminal; otherwise read one line from standard input."""
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise click.UsageError(
            "PASSWORD missing: give it, type it on a terminal, or pipe it on stdin"
        )
    return password


def _user_named(username: str):
    from tracker.auth.accounts import user_named
    from tracker.extensions import db as database

    user = user_named(database.session, username)
    if user is None:
        raise click.ClickException(f"no user {username!r}")
    return user


def _add_user(username: str, password: str, role: str | None = None):
    from tracker.auth.users import create_user as new_user
    from tracker.extensions import db as database
    from tracker.fields import FieldError

    try:
        user = new_user(
            database.session,
            username,
            password,
            role,
            current_app.config["PASSWORD_MIN_LENGTH"],
        )
    except FieldError as exc:
        if exc.field == "username" and "already exists" in exc.message:
            raise click.ClickException(f"user {username!r} already exists") from None
        if exc.field == "password":
            raise click.ClickException(
                f"password {exc.message} (PASSWORD_MIN_LENGTH)"
            ) from None
        raise click.BadParameter(exc.message, param_hint=exc.field.upper()) from None
    database.session.commit()
    return user


@click.command("create_usr")
@click.argument("username")
@click.argument("password", required=False)
@click.option(
    "--role",
    type=click.Choice(["viewer", "operator", "admin"]),
    help="The user's role; the first user is an admin, later ones viewers.",
)
@with_appcontext
def create_user(username: str, password: str | None, role: str | None) -> None:
    """Create a dashboard user; without PASSWORD, asks for it (or reads it
    from standard input)."""
    user = _add_user(
        username, _read_new_password() if password is None else password, role
    )
    click.echo(f"Created user {username} ({user.role}).")


cli.add_command(create_user, "create_usr")
# The original tool spelled it create_user; both names work.
cli.add_command(create_user, "create_user")


@cli.command("set-password")
@click.argument("username")
@with_appcontext
def set_password(username: str) -> None:
    """Set USERNAME's password (asks for it, or reads it from standard input);
    the user's signed-in sessions end."""
    from tracker.audit.trail import record
    from tracker.auth.accounts import end_sessions
    from tracker.extensions import db as database

    user = _user_named(username)
    password = _read_new_password()
    _check_new_password(password)
    user.set_password(password)
    user.must_change_password = False
    ended = end_sessions(database.session, user)
    record(database.session, "users", "set_password", "User", user.id, username)
    database.session.commit()
    click.echo(f"Changed the password of {username}; ended {ended} session(s).")


@cli.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(["viewer", "operator", "admin"]))
@click.option(
    "--supervisor/--no-supervisor",
    default=None,
    help="Grant or withdraw the permission to approve quota overrides.",
)
@click.option("--enable/--disable", default=None, help="Let the user sign in, or not.")
@with_appcontext
def set_role(
    username: str, role: str, supervisor: bool | None, enable: bool | None
) -> None:
    """Give USERNAME a role (and the supervisor permission, or enable them):
    the way back when no admin can sign in."""
    from tracker.auth.users import change_role, set_active
    from tracker.extensions import db as database
    from tracker.fields import FieldError

    user = _user_named(username)
    try:
        change_role(
            database.session,
            user,
            role,
            user.supervisor if supervisor is None else supervisor,
        )
        if enable is not None:
            set_active(database.session, user, enable)
    except FieldError as exc:
        raise click.ClickException(f"{exc.field}: {exc.message}") from None
    database.session.commit()
    state = "active" if user.active else "disabled"
    extra = " + supervisor" if user.supervisor else ""
    click.echo(f"{username} is now {user.role}{extra}, {state}.")


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


@cli.command("users")
@with_appcontext
def list_users() -> None:
    """List the dashboard users."""
    from tracker.auth.models import ApiToken, User
    from tracker.db_types import utcnow
    from tracker.extensions import db as database

    now = utcnow()
    live_tokens = (
        select(func.count(ApiToken.id))
        .where(
            ApiToken.user_id == User.id,
            ApiToken.revoked.is_(None),
            ApiToken.expires > now,
        )
        .scalar_subquery()
    )
    rows = database.session.execute(
        select(User, live_tokens).order_by(User.username)
    ).all()
    click.echo(f"{'USER':<24} {'ROLE':<22} {'ACTIVE':<6} {'CREATED':<20} TOKENS")
    for user, tokens in rows:
        active = "yes" if user.active else "no"
        role = user.role + (" + supervisor" if user.supervisor else "")
        click.echo(
            f"{user.username:<24} {role:<22} {active:<6} "
            f"{_when(user.created):<20} {tokens}"
        )


@cli.command("create-token")
@click.argument("username")
@click.option("--name", default="", help="A note saying what the token is for.")
@click.option(
    "--expires-in",
    "days",
    default=365,
    show_default=True,
    type=click.IntRange(1, 36500),
    metavar="DAYS",
    help="Days until the token expires.",
)
@click.option(
    "--read-only", is_flag=True, help="The token only reads, whatever the user's role."
)
@with_appcontext
def create_token(username: str, name: str, days: int, read_only: bool) -> None:
    """Issue an API token for USERNAME (acting with USERNAME's role) and print
    it once."""
    from tracker.auth.tokens import issue_token
    from tracker.extensions import db as database

    if len(name) > 80:
        raise click.BadParameter("at most 80 characters", param_hint="--name")
    token = issue_token(database.session, _user_named(username), name, days, read_only)
    database.session.commit()
    click.echo(token)


@cli.group()
def tokens() -> None:
    """List and revoke API tokens."""


@tokens.command("list")
@click.option("--user", "username", help="Only the tokens of this user.")
@with_appcontext
def tokens_list(username: str | None) -> None:
    """List API tokens: their id, user, name, access, expiry, last use and
    status."""
    from tracker.auth.models import ApiToken, User
    from tracker.auth.tokens import token_status
    from tracker.extensions import db as database

    statement = select(ApiToken, User.username).join(User).order_by(ApiToken.id)
    if username is not None:
        statement = statement.where(User.id == _user_named(username).id)
    click.echo(
        f"{'ID':>5} {'USER':<16} {'NAME':<20} {'ACCESS':<10} {'EXPIRES':<20} "
        f"{'LAST USED':<20} STATUS"
    )
    for token, owner in database.session.execute(statement):
        access = "read-only" if token.read_only else "full"
        click.echo(
            f"{token.id:>5} {owner:<16} {token.name:<20} {access:<10} "
            f"{_when(token.expires):<20} {_when(token.last_used):<20} "
            f"{token_status(token)}"
        )


@tokens.command("revoke")
@click.argument("token_id", metavar="ID", type=click.IntRange(1, 2**31 - 1))
@with_appcontext
def tokens_revoke(token_id: int) -> None:
    """Revoke the API token ID (as ``tokens list`` shows it)."""
    from tracker.auth.models import ApiToken
    from tracker.auth.tokens import revoke_token
    from tracker.extensions import db as database

    token = database.session.get(ApiToken, token_id)
    if token is None:
        raise click.ClickException(f"no token {token_id}")
    revoke_token(token)
    database.session.commit()
    click.echo(f"Revoked token {token_id}.")


# --- secrets at rest ---


@cli.command("rotate-secrets")
@with_appcontext
def rotate_secrets() -> None:
    """Re-encrypt the secrets stored in the database under SECRET_KEY.

    Rotate the key: set the new SECRET_KEY with the old one in
    SECRET_KEY_FALLBACKS, run this, then drop the fallback.
    """
    from tracker.crypto import UndecryptableValue, keyring, rotate_encrypted_columns
    from tracker.extensions import db as database

    import_all_models()
    try:
        with database.engine.begin() as connection:
            count = rotate_encrypted_columns(
                connection, database.metadata, keyring(current_app.config)
            )
    except UndecryptableValue as exc:
        raise click.ClickException(str(exc)) from None
    from tracker.audit.trail import record

    record(database.session, "tracker", "rotate-secrets", summary=f"{count} secret(s)")
    database.session.commit()
    click.echo(f"Re-encrypted {count} stored secret(s) under SECRET_KEY.")


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
        f"Created the first user: admin / {password}  "
        "(change it on the Account page after signing in)"
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


def _queue_list(value: str) -> list[str]:
    from tracker.background import queue_names

    known = queue_names(current_app.extensions["celery"])
    names = [name.strip() for name in value.split(",")]
    if not all(name in known for name in names):
        raise click.BadParameter(
            f"a comma-separated list of {', '.join(known)}", param_hint="--queues"
        )
    return names


@cli.command("runworker")
@click.argument("concurrency", required=False, type=click.IntRange(1, 256))
@click.option(
    "--queues",
    metavar="Q,...",
    help="Consume only these queues (default: all): celery (periodic and "
    "short jobs), crawl (crawl chunks).",
)
@click.option(
    "--name",
    metavar="N",
    help="The worker's node name (N@host unless N names the host).",
)
@with_appcontext
def runworker(concurrency: int | None, queues: str | None, name: str | None):
    """Run a Celery worker with CONCURRENCY processes (default: one per core).

    SIGTERM stops it safely: it finishes the tasks it runs, then exits.
    """
    args = ["worker", "--loglevel=info", "--without-gossip", "--without-mingle"]
    if concurrency:
        args.append(f"--concurrency={concurrency}")
    if queues is not None:
        args.append(f"--queues={','.join(_queue_list(queues))}")
    if name:
        if not re.fullmatch(r"[A-Za-z0-9_.%@-]{1,100}", name):
            raise click.BadParameter(
                "1 to 100 letters, digits or . _ - @ %", param_hint="--name"
            )
        args.append(f"--hostname={name if '@' in name else name + '@%h'}")
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


PR_SET_PDEATHSIG = 1  # prctl(2): the signal a child gets when its parent dies


def _stop_with_parent(parent: int):
    """For ``Popen(preexec_fn=...)``: the child gets SIGTERM when ``run`` dies,
    even killed outright, so no worker (and no second beat) outlives it."""

    def arrange() -> None:
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # it died before the line above
            os.kill(os.getpid(), signal.SIGTERM)

    return arrange


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
            preexec_fn=_stop_with_parent(os.getpid()),
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

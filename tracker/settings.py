"""Settings: built-in defaults, a Python-syntax settings file, ``TRACKER_*`` variables.

Every key is validated once at start-up; a bad value raises :class:`SettingsError`
whose message is a single line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import ast
import ipaddress
import os
import re
import secrets
import time
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from babel import Locale, UnknownLocaleError
from limits import parse_many
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from tracker.auth.roles import ROLES

ENV_PREFIX = "TRACKER_"
SETTINGS_FILE_ENV = "TRACKER_SETTINGS"
DEFAULT_SETTINGS_FILE = "settings.cfg"
SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name
SECRET_KEY_MIN_BYTES = 32
# The instance registry is always on; DOMAINS chooses among the others.
REGISTRY = "tracker.instances"
KNOWN_DOMAINS = ("quota", "sync", "allocation")
# Who may read /metrics: loopback and the private ranges a Prometheus runs in.
DEFAULT_METRICS_NETWORKS = [
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
]

# Keys owned by Flask or its extensions pass through unvalidated by us.
PASSTHROUGH_PREFIXES = (
    "SESSION_",
    "REMEMBER_COOKIE_",
    "SQLALCHEMY_",
    "WTF_",
    "BABEL_",
    "PERMANENT_SESSION_",
    "PREFERRED_URL_SCHEME",
    "SERVER_NAME",
    "APPLICATION_ROOT",
    "MAX_CONTENT_LENGTH",
    "TEMPLATES_AUTO_RELOAD",
    "EXPLAIN_TEMPLATE_LOADING",
    "TRUSTED_HOSTS",
    "DEBUG",
    "TESTING",
    "PROPAGATE_EXCEPTIONS",
    "TRAP_",
    "USE_X_SENDFILE",
    "SEND_FILE_MAX_AGE_DEFAULT",
    "MAX_COOKIE_SIZE",
    "MAX_FORM_",
    "PROVIDE_AUTOMATIC_OPTIONS",
    "CELERY_",
    "SECRET_KEY_FALLBACKS",
    "RATELIMIT_",
)


class SettingsError(Exception):
    """A setting is missing, malformed or out of range; the message is one line."""


class Invalid(ValueError):
    """Raised by a check; its message says what is allowed."""


@dataclass(frozen=True)
class Setting:
    """One documented, validated setting."""

    name: str
    default: Any
    check: Callable[[Any], Any]
    secret: bool = False


# --- checks: each returns the (possibly normalised) value or raises Invalid ---


def string(max_length: int = 200, allow_empty: bool = False) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid("a string")
        if not value.strip() and not allow_empty:
            raise Invalid("a non-empty string")
        if len(value) > max_length:
            raise Invalid(f"a string of at most {max_length} characters")
        return value

    return check


def integer(minimum: int, maximum: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"an integer from {minimum} to {maximum}")
        if not minimum <= value <= maximum:
            raise Invalid(f"an integer from {minimum} to {maximum}")
        return value

    return check


def number(minimum: float, maximum: float) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(f"a number from {minimum} to {maximum}")
        if not minimum <= value <= maximum:
            raise Invalid(f"a number from {minimum} to {maximum}")
        return float(value)

    return check


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("True or False")
    return value


def one_of(*choices: Any) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value not in choices:
            raise Invalid("one of " + ", ".join(repr(c) for c in choices))
        return value

    return check


def optional(inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        return None if value is None else inner(value)

    return check


def timezone_name(value: Any) -> str:
    try:
        zoneinfo.ZoneInfo(string()(value))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid(
            "an IANA time zone name such as 'UTC' or 'Europe/Zurich'"
        ) from exc
    return value


def locale_name(value: Any) -> str:
    try:
        Locale.parse(string(20)(value))
    except (UnknownLocaleError, ValueError) as exc:
        raise Invalid("a locale identifier such as 'en_GB' or 'fr_FR'") from exc
    return value


def database_uri(value: Any) -> str | None:
    if value is None:
        return None
    try:
        url = make_url(string(2000)(value))
    except (ArgumentError, ValueError) as exc:
        raise Invalid(
            "an SQLAlchemy URL such as 'postgresql+psycopg://u@h/db'"
        ) from exc
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise Invalid("a sqlite:// or postgresql:// URL")
    return value


def domain_list(value: Any) -> list[str]:
    allowed = "a list drawn from " + ", ".join(repr(d) for d in KNOWN_DOMAINS)
    if not isinstance(value, list | tuple) or not all(
        isinstance(d, str) and d in KNOWN_DOMAINS for d in value
    ):
        raise Invalid(allowed)
    return list(dict.fromkeys(value))


BROKER_SCHEMES = (
    "redis",
    "rediss",
    "redis+socket",
    "amqp",
    "amqps",
    "filesystem",
    "memory",
    "sqla+sqlite",
    "sqla+postgresql",
)


def broker_url(value: Any) -> str | None:
    if value is None:
        return None
    url = string(2000)(value)
    if url.split("://", 1)[0] not in BROKER_SCHEMES or "://" not in url:
        raise Invalid(
            "a Celery broker URL with one of the schemes " + ", ".join(BROKER_SCHEMES)
        )
    return url


def rate_limit(value: Any) -> str | None:
    """A Flask-Limiter limit such as "30/minute;1000/day", or None for no limit
    (also "None" or "off", as an environment variable can only say it)."""
    if value is None or (
        isinstance(value, str) and value.strip().lower() in ("none", "off")
    ):
        return None
    try:
        parse_many(string(500)(value))
    except ValueError as exc:
        raise Invalid(
            'a rate limit such as "30/minute;1000/day" (or None for no limit)'
        ) from exc
    return value


def networks(value: Any) -> list[str]:
    if not isinstance(value, list | tuple):
        raise Invalid("a list of networks such as '10.0.0.0/8' or 'fd00::/8'")
    for network in value:
        try:
            ipaddress.ip_network(network, strict=False)
        except (TypeError, ValueError):
            raise Invalid(
                f"a list of networks such as '10.0.0.0/8' ({network!r} is not one)"
            ) from None
    return list(value)


def existing_file(value: Any) -> str | None:
    if value is None:
        return None
    if not Path(string(2000)(value)).is_file():
        raise Invalid("the path of an existing file")
    return value


def beat_schedule(value: Any) -> dict | None:
    """Entries {"name": {"task": ..., "schedule": seconds | timedelta | crontab}}."""
    if value is None:
        return None
    shape = 'a dict of name -> {"task": "dotted.name", "schedule": seconds} (or None)'
    if not isinstance(value, dict):
        raise Invalid(shape)
    for name, entry in value.items():
        if entry is None:
            continue  # switches a built-in entry off
        if not isinstance(name, str) or not isinstance(entry, dict):
            raise Invalid(shape)
        if not isinstance(entry.get("task"), str) or "schedule" not in entry:
            raise Invalid(f"{shape}; entry {name!r} lacks task or schedule")
        unknown = set(entry) - {"task", "schedule", "args", "kwargs", "options"}
        if unknown:
            raise Invalid(f"{shape}; entry {name!r} has {', '.join(sorted(unknown))}")
        seconds = schedule_seconds(entry["schedule"])
        if seconds is not None and seconds <= 0:
            raise Invalid(
                f"{shape}; entry {name!r} has a schedule that is not positive"
            )
        if seconds is None and not hasattr(entry["schedule"], "is_due"):
            raise Invalid(f"{shape}; entry {name!r} has an unknown schedule")
    return value


def schedule_seconds(schedule: Any) -> float | None:
    """Seconds between runs of a fixed-interval schedule, None for calendar ones."""
    if isinstance(schedule, bool):
        return None
    if isinstance(schedule, int | float):
        return float(schedule)
    if isinstance(schedule, timedelta):
        return schedule.total_seconds()
    run_every = getattr(schedule, "run_every", None)  # celery.schedules.schedule
    return run_every.total_seconds() if isinstance(run_every, timedelta) else None


LOOPBACK_HOSTS = ("localhost",)
# What an OIDC_ROLE_MAP value may be: a role, or the supervisor permission
# (which comes with the operator role).
SUPERVISOR = "supervisor"
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


def _loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def oidc_issuer(value: Any) -> str | None:
    """None (single sign-on off) or an https:// issuer URL; http:// only on a
    loopback address, for trying it out."""
    if value is None:
        return None
    shape = "an https:// issuer URL such as 'https://id.example.org/realms/ops'"
    parts = urlsplit(string(500)(value))
    if not parts.hostname or parts.query or parts.fragment or parts.username:
        raise Invalid(shape)
    if parts.scheme == "http" and _loopback(parts.hostname):
        return value
    if parts.scheme != "https":
        raise Invalid(f"{shape} (http:// only on a loopback address)")
    return value


def oidc_scopes(value: Any) -> str:
    scopes = string(500)(value).split()
    if "openid" not in scopes or not all(SCOPE_TOKEN.match(s) for s in scopes):
        raise Invalid("a space-separated list of scopes including 'openid'")
    return " ".join(dict.fromkeys(scopes))


def oidc_role_map(value: Any) -> dict[str, str]:
    choices = ", ".join(repr(r) for r in (*ROLES, SUPERVISOR))
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k and v in (*ROLES, SUPERVISOR) for k, v in value.items()
    ):
        raise Invalid(f"a dict of claim value -> one of {choices}")
    return dict(value)


CORE_SETTINGS: tuple[Setting, ...] = (
    Setting("SECRET_KEY", None, optional(string(500)), secret=True),
    Setting("APP_NAME", "Instance Tracker", string(100)),
    Setting("BABEL_DEFAULT_TIMEZONE", "UTC", timezone_name),
    Setting("BABEL_DEFAULT_LOCALE", "en_GB", locale_name),
    Setting("SQLALCHEMY_DATABASE_URI", None, database_uri, secret=True),
    Setting("DOMAINS", list(KNOWN_DOMAINS), domain_list),
    Setting("API_MAX_BODY_BYTES", 64 * 1024, integer(1024, 16 * 1024 * 1024)),
    Setting("API_PAGE_SIZE", 50, integer(1, 1000)),
    Setting("API_MAX_PAGE_SIZE", 500, integer(1, 10000)),
    Setting("DASHBOARD_PAGE_SIZE", 25, integer(1, 1000)),
    Setting(
        "PASSWORD_HASH_METHOD", "scrypt", one_of("scrypt", "pbkdf2", "pbkdf2:sha256:1")
    ),
    Setting("CELERY_BROKER_URL", None, broker_url, secret=True),
    Setting("CELERYBEAT_SCHEDULE", None, beat_schedule),
    Setting("TRUSTED_PROXIES", 0, integer(0, 10)),
    Setting("LOGIN_RATE_LIMIT", "10 per 15 minutes", rate_limit),
    Setting("PASSWORD_MIN_LENGTH", 12, integer(8, 200)),
    Setting("LOGIN_SESSION_DAYS", 14, integer(1, 366)),
    Setting("HOUSEKEEPING_INTERVAL", 300, integer(1, 86400)),
    Setting("BATCH_HEARTBEAT_TIMEOUT", 600, integer(1, 7 * 86400)),
    Setting("BATCH_MAX_RESUMES", 3, integer(0, 100)),
    Setting("BATCH_ITEM_DAYS", 30, integer(1, 36500)),
    Setting("METRICS_ALLOW_NETWORKS", DEFAULT_METRICS_NETWORKS, networks),
    Setting("BATCH_OPERATION_DAYS", 180, integer(1, 36500)),
    Setting("OIDC_ISSUER", None, oidc_issuer),
    Setting("OIDC_PROVIDER_NAME", "OpenID Connect", string(60)),
    Setting("OIDC_CLIENT_ID", None, optional(string(200))),
    Setting("OIDC_CLIENT_SECRET", None, optional(string(500)), secret=True),
    Setting("OIDC_SCOPES", "openid profile email", oidc_scopes),
    Setting("OIDC_ROLE_CLAIM", "groups", string(200)),
    Setting("OIDC_ROLE_MAP", {}, oidc_role_map),
    Setting("OIDC_DEFAULT_ROLE", None, optional(one_of(*ROLES))),
    Setting("OIDC_ALLOW_PASSWORDS", True, boolean),
    Setting("OIDC_TIMEOUT", 10, number(0.5, 120)),
)

# A check of several settings together: raises SettingsError naming the first.
CrossCheck = Callable[[dict[str, Any]], None]


def check_single_sign_on(values: dict[str, Any]) -> None:
    """Single sign-on needs a client id; turning passwords off needs it on."""
    if values["OIDC_ISSUER"] is not None and values["OIDC_CLIENT_ID"] is None:
        raise SettingsError(
            "OIDC_CLIENT_ID = None is invalid: must be the client id registered "
            "at the provider when OIDC_ISSUER is set"
        )
    if values["OIDC_ISSUER"] is None and not values["OIDC_ALLOW_PASSWORDS"]:
        raise SettingsError(
            "OIDC_ALLOW_PASSWORDS = False is invalid: must be True unless "
            "OIDC_ISSUER is set (no one could sign in)"
        )


CORE_CHECKS: tuple[CrossCheck, ...] = (check_single_sign_on,)


# --- loading ---


def read_settings_file(path: Path) -> dict[str, Any]:
    """Execute a Python-syntax settings file and return its upper-case names."""
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(
            f"cannot read settings file {path}: {exc.strerror}"
        ) from exc
    namespace: dict[str, Any] = {"__file__": str(path)}
    try:
        exec(compile(source, str(path), "exec"), namespace)  # noqa: S102 - trusted admin file
    except SyntaxError as exc:
        raise SettingsError(
            f"settings file {path} line {exc.lineno}: syntax error: {exc.msg}"
        ) from exc
    except Exception as exc:  # any error raised by the admin's own Python
        raise SettingsError(
            f"settings file {path}: {type(exc).__name__}: {exc}"
        ) from exc
    return {k: v for k, v in namespace.items() if k.isupper()}


def _unquoted(raw: str) -> str:
    if len(raw) >= 2 and raw[0] in "'\"" and raw[-1] == raw[0]:
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return raw
        if isinstance(value, str):
            return value
    return raw


def read_environment(environ: Mapping[str, str], specs: Iterable[Setting]) -> dict:
    """Return ``TRACKER_<KEY>`` variables, parsed as Python literals if not strings."""
    by_name = {s.name: s for s in specs}
    values = {}
    for var, raw in environ.items():
        if not var.startswith(ENV_PREFIX) or var == SETTINGS_FILE_ENV:
            continue
        key = var[len(ENV_PREFIX) :]
        if key == "INSTANCE_PATH":
            continue
        spec = by_name.get(key)
        if spec is not None and (spec.default is None or isinstance(spec.default, str)):
            # Taken as written; a quoted Python string is unquoted.
            values[key] = _unquoted(raw)
            continue
        try:
            values[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            # A bare word such as TRACKER_FOO=bar is taken as the string it is.
            values[key] = raw
    return values


def settings_file_path(environ: Mapping[str, str]) -> Path | None:
    """Return the settings file to load, or None when there is none."""
    named = environ.get(SETTINGS_FILE_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise SettingsError(f"{SETTINGS_FILE_ENV}={named}: no such file")
        return path
    default = Path(DEFAULT_SETTINGS_FILE)
    return default if default.is_file() else None


def _shown(value: Any, secret: bool) -> str:
    if secret:
        return "<hidden>"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validate(
    raw: dict[str, Any],
    specs: Iterable[Setting],
    checks: Iterable[CrossCheck] = (),
) -> dict[str, Any]:
    """Check every key, then the cross-checks; return the normalised values or
    raise SettingsError."""
    specs = tuple(specs)
    known = {s.name for s in specs}
    for key in sorted(raw):
        if key not in known and not key.startswith(PASSTHROUGH_PREFIXES):
            raise SettingsError(
                f"{key}: unknown setting (settings.cfg.example lists every setting)"
            )
    values = dict(raw)
    for spec in specs:
        value = raw.get(spec.name, spec.default)
        try:
            values[spec.name] = spec.check(value)
        except Invalid as exc:
            raise SettingsError(
                f"{spec.name} = {_shown(value, spec.secret)} is invalid: must be {exc}"
            ) from None
    for check in checks:
        check(values)
    return values


@dataclass(frozen=True)
class SettingsLayers:
    """The settings file (read once), the environment and the overrides."""

    from_file: Mapping[str, Any]
    environ: Mapping[str, str]
    overrides: Mapping[str, Any]

    @classmethod
    def read(
        cls, environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None
    ) -> SettingsLayers:
        path = settings_file_path(environ)
        from_file = read_settings_file(path) if path is not None else {}
        return cls(from_file, environ, overrides or {})

    def merged(self, specs: Iterable[Setting]) -> dict[str, Any]:
        """The layers over each other, unvalidated: overrides win."""
        return {
            **self.from_file,
            **read_environment(self.environ, specs),
            **self.overrides,
        }

    def check_secret_key(self, value: str | None) -> None:
        """Refuse a SECRET_KEY of fewer than 32 bytes set by the settings file
        or the environment (the generated one has 64 hex digits)."""
        if value is None or "SECRET_KEY" in self.overrides:
            return
        if len(value.encode("utf-8")) < SECRET_KEY_MIN_BYTES:
            source = (
                f"{ENV_PREFIX}SECRET_KEY"
                if f"{ENV_PREFIX}SECRET_KEY" in self.environ
                else "SECRET_KEY"
            )
            raise SettingsError(
                f"{source} is too short: use at least {SECRET_KEY_MIN_BYTES} random "
                "bytes, e.g. the output of: python -c "
                "'import secrets; print(secrets.token_hex(32))'"
            )

    def domains(self) -> list[str]:
        """The DOMAINS setting alone, checked, so their own settings can be known."""
        spec = next(s for s in CORE_SETTINGS if s.name == "DOMAINS")
        raw = self.merged(CORE_SETTINGS).get("DOMAINS", spec.default)
        return validate({"DOMAINS": raw}, (spec,))["DOMAINS"]


def persistent_secret_key(instance_path: Path) -> str:
    """Return the key kept in the instance folder, generating it on first use."""
    path = instance_path / SECRET_KEY_FILE
    keep_private(path, 0o600)
    key = secrets.token_hex(32)
    # O_EXCL: when web, worker and beat start at once, exactly one writes the key;
    # the others wait until it is on disk.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            existing = path.read_text(encoding="ascii").strip()
            if existing:
                return existing
            time.sleep(0.1)
        raise SettingsError(
            f"{path} is empty: delete it to generate a new key"
        ) from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key)
    return key


def keep_private(path: Path, mode: int) -> None:
    """Take group and other permissions off ``path`` (if it is ours): the
    instance folder, the database and the key hold secrets."""
    try:
        status = path.stat()
        if status.st_uid == os.geteuid() and status.st_mode & 0o077:
            path.chmod(mode)
    except OSError:
        pass  # missing, or not ours to change: nothing to tighten

"""Settings: layers, validation with one-line messages, the embedded defaults."""

from __future__ import annotations

import pytest

from tracker import create_app
from tracker.settings import SettingsError


def build(tmp_path, overrides=None, environ=None):
    return create_app(
        overrides, instance_path=tmp_path / "instance", environ=environ or {}
    )


def test_embedded_defaults_use_sqlite_in_the_instance_folder(tmp_path):
    app = build(tmp_path)
    instance = tmp_path / "instance"
    assert (
        app.config["SQLALCHEMY_DATABASE_URI"]
        == f"sqlite:///{instance / 'tracker.sqlite'}"
    )
    assert app.config["BABEL_DEFAULT_TIMEZONE"] == "UTC"
    assert app.config["BABEL_DEFAULT_LOCALE"] == "en_GB"


def test_generated_secret_key_is_kept_in_the_instance_folder(tmp_path):
    first = build(tmp_path).config["SECRET_KEY"]
    assert len(first) >= 32
    assert (tmp_path / "instance" / "secret_key").read_text() == first
    assert (tmp_path / "instance" / "secret_key").stat().st_mode & 0o077 == 0
    assert build(tmp_path).config["SECRET_KEY"] == first


def test_layers_file_then_environment(tmp_path):
    settings = tmp_path / "custom.cfg"
    settings.write_text('APP_NAME = "From file"\nAPI_PAGE_SIZE = 10\n')
    app = build(tmp_path, environ={"TRACKER_SETTINGS": str(settings)})
    assert (app.config["APP_NAME"], app.config["API_PAGE_SIZE"]) == ("From file", 10)

    app = build(
        tmp_path,
        environ={
            "TRACKER_SETTINGS": str(settings),
            "TRACKER_APP_NAME": "From env",
            "TRACKER_API_PAGE_SIZE": "20",
        },
    )
    assert (app.config["APP_NAME"], app.config["API_PAGE_SIZE"]) == ("From env", 20)


def test_settings_cfg_in_the_working_directory_is_read(tmp_path):
    (tmp_path / "settings.cfg").write_text('APP_NAME = "Here"\n')
    assert build(tmp_path).config["APP_NAME"] == "Here"


def test_a_string_setting_from_the_environment_stays_a_string(tmp_path):
    assert (
        build(tmp_path, environ={"TRACKER_APP_NAME": "123"}).config["APP_NAME"] == "123"
    )


def test_a_string_setting_may_be_quoted_as_a_python_literal(tmp_path):
    url = f"sqlite:///{tmp_path / 'quoted.sqlite'}"
    for raw in (f'"{url}"', f"'{url}'", url):
        config = build(
            tmp_path, environ={"TRACKER_SQLALCHEMY_DATABASE_URI": raw}
        ).config
        assert config["SQLALCHEMY_DATABASE_URI"] == url
    odd = build(tmp_path, environ={"TRACKER_APP_NAME": "'half"}).config["APP_NAME"]
    assert odd == "'half"


def test_domains_setting_limits_the_domains(tmp_path):
    app = build(tmp_path, {"DOMAINS": ["quota"]})
    assert app.config["DOMAINS"] == ["quota"]


BAD_SETTINGS = [
    ("APP_NAME", "", "APP_NAME = '' is invalid: must be a non-empty string"),
    ("APP_NAME", 5, "APP_NAME = 5 is invalid: must be a string"),
    ("BABEL_DEFAULT_TIMEZONE", "Mars/Olympus", "an IANA time zone name"),
    ("BABEL_DEFAULT_LOCALE", "xx_YY", "a locale identifier"),
    ("SQLALCHEMY_DATABASE_URI", "mysql://h/db", "a sqlite:// or postgresql:// URL"),
    ("SQLALCHEMY_DATABASE_URI", "::nonsense::", "an SQLAlchemy URL"),
    (
        "DOMAINS",
        ["quota", "weather"],
        "a list drawn from 'quota', 'sync', 'allocation'",
    ),
    ("DOMAINS", "quota", "a list drawn from"),
    ("CRAWLING_ENDPOINTS", {"url": "/x"}, "a list of"),
    ("CRAWLING_ENDPOINTS", [{"url": "x"}], "whose url starts with '/'"),
    ("CRAWLING_ENDPOINTS", [{"url": "/x", "headers": {"A": 1}}], "headers map strings"),
    ("CRAWLING_ENDPOINTS", [{"url": "/x", "method": "POST"}], "a list of"),
    ("CRAWLED_FIELDS_SETTINGS", [], "a dict of field name"),
    (
        "CRAWLED_FIELDS_SETTINGS",
        {"f": {"chart_type": "radar"}},
        "field 'f' option 'chart_type' to be one of 'bar', 'line', 'pie'",
    ),
    (
        "CRAWLED_FIELDS_SETTINGS",
        {"f": {"aggregation": "median"}},
        "option 'aggregation'",
    ),
    (
        "CRAWLED_FIELDS_SETTINGS",
        {"f": {"chart_aggregation": "max"}},
        "option 'chart_aggregation'",
    ),
    (
        "CRAWLED_FIELDS_SETTINGS",
        {"f": {"chart": "yes"}},
        "option 'chart' to be True or False",
    ),
    ("CRAWLED_FIELDS_SETTINGS", {"f": {"colour": "red"}}, "field 'f' has colour"),
    ("API_MAX_BODY_BYTES", 10, "an integer from 1024 to"),
    ("API_PAGE_SIZE", True, "an integer from 1 to 1000"),
    ("API_MAX_PAGE_SIZE", 0, "an integer from 1 to 10000"),
    ("DASHBOARD_PAGE_SIZE", "25", "an integer from 1 to 1000"),
    ("PASSWORD_HASH_METHOD", "md5", "one of 'scrypt', 'pbkdf2'"),
    ("SECRET_KEY", 12345, "SECRET_KEY = <hidden> is invalid: must be a string"),
    ("CELERY_BROKER_URL", "http://broker", "CELERY_BROKER_URL = <hidden> is invalid"),
    ("CELERYBEAT_SCHEDULE", {"x": {"task": "t"}}, "entry 'x' lacks task or schedule"),
    ("CELERYBEAT_SCHEDULE", {"x": {"task": "t", "schedule": -5}}, "not positive"),
    (
        "CELERYBEAT_SCHEDULE",
        {"x": {"task": "t", "schedule": "hourly"}},
        "unknown schedule",
    ),
    ("CELERYBEAT_SCHEDULE", [], "a dict of name"),
    ("CRAWL_INTERVAL", 0, "an integer from 1 to"),
    ("CRAWL_TIMEOUT", "ten", "a number from 0.1 to 600"),
    ("CRAWL_CONNECT_TIMEOUT", 0, "a number from 0.1 to 600"),
    ("CRAWL_MAX_BYTES", 10, "an integer from 1024 to"),
    ("CRAWL_MAX_DEPTH", 0, "an integer from 1 to 200"),
    ("API_REGISTRATION_RATE_LIMIT", "lots", "a rate limit such as"),
    ("TRUSTED_PROXIES", -1, "an integer from 0 to 10"),
    ("LOGIN_RATE_LIMIT", "ten a day", "a rate limit such as"),
    ("PASSWORD_MIN_LENGTH", 4, "an integer from 8 to 200"),
    ("LOGIN_SESSION_DAYS", 0, "an integer from 1 to 366"),
    ("METRICS_ALLOW_NETWORKS", ["10.0.0.0/8", "office"], "a list of networks"),
    ("CRAWL_MAX_KEYS", "many", "an integer from 1 to"),
    ("CRAWL_CONCURRENCY", 0, "an integer from 1 to 5000"),
    ("CRAWL_CHUNK_SIZE", -1, "an integer from 1 to"),
    ("CRAWL_DATABASE_RETRIES", -1, "an integer from 0 to 1000"),
    ("CRAWL_ALLOW_NETWORKS", ["10.0.0.0/33"], "'10.0.0.0/33' is not one"),
    ("CRAWL_DENY_NETWORKS", "10.0.0.0/8", "a list of networks"),
    ("CRAWL_REQUIRE_APPROVAL", "yes", "True or False"),
    ("CRAWL_HISTORY_DAYS", 0, "an integer from 1 to"),
    ("CRAWL_USER_AGENT", "", "a non-empty string"),
    ("GEOIP_DATABASE", "/no/such/file.mmdb", "the path of an existing file"),
    ("HOUSEKEEPING_INTERVAL", 0, "an integer from 1 to 86400"),
    ("BATCH_HEARTBEAT_TIMEOUT", 0, "an integer from 1 to"),
    ("BATCH_MAX_RESUMES", -1, "an integer from 0 to 100"),
    ("BATCH_ITEM_DAYS", "30", "an integer from 1 to 36500"),
    ("CRAWL_HISTORY_MAX_BYTES", -1, "an integer from 0 to"),
    ("API_HEARTBEAT_RATE_LIMIT", "often", "a rate limit such as"),
    ("CONTACT_EVERY", 5, "an integer from 60 to"),
    ("CONTACT_GRACE", "1h", "an integer from 0 to"),
    ("NOTIFICATION_URLS", ["nonsense://x"], "not a URL Apprise supports"),
    ("NOTIFICATION_ROUTES", [{"events": ["registration"]}], "a list of"),
    ("NOTIFICATION_EVALUATE_INTERVAL", 1, "an integer from 10 to"),
    ("NOTIFICATION_RETRIES", -1, "an integer from 0 to 50"),
    ("NOTIFICATION_BACKOFF_SECONDS", 0, "an integer from 1 to"),
    ("NOTIFICATION_DAYS", 0, "an integer from 1 to"),
    ("BATCH_OPERATION_DAYS", 0, "an integer from 1 to 36500"),
    ("OIDC_ISSUER", "http://id.example.org", "http:// only on a loopback address"),
    ("OIDC_ISSUER", "https://id.example.org/?realm=ops", "an https:// issuer URL"),
    ("OIDC_ISSUER", "id.example.org", "an https:// issuer URL"),
    ("OIDC_PROVIDER_NAME", "", "a non-empty string"),
    ("OIDC_CLIENT_ID", 42, "a string"),
    ("OIDC_CLIENT_SECRET", 42, "OIDC_CLIENT_SECRET = <hidden> is invalid"),
    ("OIDC_SCOPES", "profile email", "a space-separated list of scopes including"),
    ("OIDC_SCOPES", 'openid "email"', "a space-separated list of scopes including"),
    ("OIDC_ROLE_CLAIM", "", "a non-empty string"),
    ("OIDC_ROLE_MAP", {"ops": "root"}, "a dict of claim value -> one of 'viewer'"),
    ("OIDC_ROLE_MAP", ["ops"], "a dict of claim value"),
    ("OIDC_DEFAULT_ROLE", "guest", "one of 'viewer', 'operator', 'admin'"),
    ("OIDC_ALLOW_PASSWORDS", "no", "True or False"),
    ("OIDC_TIMEOUT", 0, "a number from 0.5 to 120"),
]


@pytest.mark.parametrize(("key", "value", "expected"), BAD_SETTINGS)
def test_bad_setting_stops_start_up_with_one_line(tmp_path, key, value, expected):
    with pytest.raises(SettingsError) as info:
        build(tmp_path, {key: value})
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(key)
    assert expected in message


def test_every_core_setting_has_a_failing_case():
    from tracker.instances.settings import SETTINGS as REGISTRY_SETTINGS
    from tracker.notifications.settings import SETTINGS as NOTIFICATION_SETTINGS
    from tracker.settings import CORE_SETTINGS

    tested = {key for key, _, _ in BAD_SETTINGS}
    every = (*CORE_SETTINGS, *REGISTRY_SETTINGS, *NOTIFICATION_SETTINGS)
    assert {s.name for s in every} <= tested


def test_single_sign_on_settings_go_together(tmp_path):
    with pytest.raises(SettingsError) as info:
        build(tmp_path, {"OIDC_ISSUER": "https://id.example.org"})
    assert str(info.value).startswith("OIDC_CLIENT_ID = None is invalid: must be")
    assert "\n" not in str(info.value)
    with pytest.raises(SettingsError) as info:
        build(tmp_path, {"OIDC_ALLOW_PASSWORDS": False})
    assert str(info.value).startswith("OIDC_ALLOW_PASSWORDS = False is invalid")
    app = build(
        tmp_path,
        environ={
            "TRACKER_OIDC_ISSUER": "http://127.0.0.1:8080/realms/ops",
            "TRACKER_OIDC_CLIENT_ID": "tracker",
            "TRACKER_OIDC_ROLE_MAP": "{'ops-admins': 'admin'}",
            "TRACKER_OIDC_DEFAULT_ROLE": "viewer",
            "TRACKER_OIDC_ALLOW_PASSWORDS": "False",
            "TRACKER_OIDC_SCOPES": "openid groups",
        },
    )
    assert app.config["OIDC_ROLE_MAP"] == {"ops-admins": "admin"}
    assert app.config["OIDC_DEFAULT_ROLE"] == "viewer"
    assert app.config["OIDC_ALLOW_PASSWORDS"] is False
    assert app.config["OIDC_SCOPES"] == "openid groups"


def test_a_crawl_timeout_longer_than_the_interval_is_refused(tmp_path):
    with pytest.raises(
        SettingsError, match=r"^CRAWL_TIMEOUT = 30.0 is invalid: must be shorter"
    ):
        build(tmp_path, {"CRAWL_TIMEOUT": 30, "CRAWL_INTERVAL": 20})
    schedule = {"crawl-instances": {"task": "t", "schedule": 5}}
    with pytest.raises(SettingsError, match=r"shorter than the crawl interval \(5 s\)"):
        build(tmp_path, {"CRAWL_TIMEOUT": 10, "CELERYBEAT_SCHEDULE": schedule})


def test_heartbeat_timeout_must_exceed_the_crawl_timeout(tmp_path):
    with pytest.raises(SettingsError, match=r"^BATCH_HEARTBEAT_TIMEOUT = 5 is invalid"):
        build(tmp_path, {"CRAWL_TIMEOUT": 10, "BATCH_HEARTBEAT_TIMEOUT": 5})


def test_beat_schedule_merges_with_the_built_in_jobs(tmp_path):
    from datetime import timedelta

    schedule = {
        "housekeeping": None,
        "crawl-instances": {
            "task": "tracker.instances.tasks.scheduled_crawl",
            "schedule": timedelta(minutes=30),
        },
    }
    app = build(tmp_path, {"CELERYBEAT_SCHEDULE": schedule})
    beat = app.extensions["celery"].conf.beat_schedule
    assert set(beat) == {"crawl-instances", "notifications", "quota-pull", "sync-apply"}
    assert beat["crawl-instances"]["schedule"] == timedelta(minutes=30)


def test_embedded_broker_keeps_its_files_in_the_instance_folder(tmp_path):
    conf = build(tmp_path).extensions["celery"].conf
    assert conf.broker_url == "filesystem://"
    options = conf.broker_transport_options
    assert options["data_folder_in"].startswith(str(tmp_path / "instance"))


def test_domain_settings_come_from_every_layer(tmp_path):
    settings = tmp_path / "domains.cfg"
    settings.write_text("QUOTA_PULL_INTERVAL = 60\n")
    app = build(
        tmp_path,
        {"QUOTA_OVERRIDE_HOURS": 2},
        environ={
            "TRACKER_SETTINGS": str(settings),
            "TRACKER_QUOTA_CLIENT_TIMEOUT": "3.5",
        },
    )
    assert app.config["QUOTA_PULL_INTERVAL"] == 60
    assert app.config["QUOTA_OVERRIDE_HOURS"] == 2
    assert app.config["QUOTA_CLIENT_TIMEOUT"] == 3.5
    with pytest.raises(SettingsError, match=r"^QUOTA_PULL_INTERVAL = 1 is invalid"):
        build(tmp_path, {"QUOTA_PULL_INTERVAL": 1})


def test_settings_of_a_domain_that_is_off_are_refused(tmp_path):
    with pytest.raises(SettingsError, match=r"^QUOTA_PULL_INTERVAL: unknown setting"):
        build(tmp_path, {"DOMAINS": ["sync"], "QUOTA_PULL_INTERVAL": 60})


def test_unknown_setting_is_refused(tmp_path):
    with pytest.raises(SettingsError, match=r"^CRAWLING_ENDPOINT: unknown setting"):
        build(tmp_path, {"CRAWLING_ENDPOINT": []})


def test_settings_file_syntax_error_names_file_and_line(tmp_path):
    settings = tmp_path / "broken.cfg"
    settings.write_text('APP_NAME = "ok"\nCRAWLING_ENDPOINTS = [\n')
    with pytest.raises(SettingsError, match=r"broken.cfg line \d+: syntax error"):
        build(tmp_path, environ={"TRACKER_SETTINGS": str(settings)})


def test_settings_file_that_raises_is_reported(tmp_path):
    settings = tmp_path / "raises.cfg"
    settings.write_text("APP_NAME = undefined_name\n")
    with pytest.raises(SettingsError, match="NameError"):
        build(tmp_path, environ={"TRACKER_SETTINGS": str(settings)})


def test_missing_named_settings_file_is_an_error(tmp_path):
    with pytest.raises(SettingsError, match=r"TRACKER_SETTINGS=.*no such file"):
        build(tmp_path, environ={"TRACKER_SETTINGS": str(tmp_path / "absent.cfg")})


def test_bad_value_from_the_environment_is_reported(tmp_path):
    with pytest.raises(SettingsError, match=r"^API_PAGE_SIZE = 'lots' is invalid"):
        build(tmp_path, environ={"TRACKER_API_PAGE_SIZE": "lots"})


def test_example_settings_file_is_valid_and_documents_every_key(tmp_path):
    import importlib
    from pathlib import Path

    from tracker.settings import CORE_SETTINGS, KNOWN_DOMAINS, REGISTRY

    example = Path(__file__).resolve().parents[1] / "settings.cfg.example"
    app = build(tmp_path, environ={"TRACKER_SETTINGS": str(example)})
    text = example.read_text()
    domain_settings = [
        spec
        for domain in (REGISTRY, *KNOWN_DOMAINS)
        for spec in importlib.import_module(f"{domain}.settings").SETTINGS
    ]
    for spec in [*CORE_SETTINGS, *domain_settings]:
        assert spec.name in text, spec.name
    assert app.config["APP_NAME"]

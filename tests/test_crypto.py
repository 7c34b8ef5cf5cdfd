"""Secrets at rest: quota client secrets and sync device keys are stored
encrypted under a key derived from SECRET_KEY, which can be rotated; a short
SECRET_KEY is refused; the instance folder, database and key are private."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, select, text

from tests.conftest import build_app
from tests.test_cli import assert_clean_failure, manage_command
from tracker.settings import SettingsError

KEY_A = "a" * 40
KEY_B = "b" * 40
DEVICE_KEY = "0123456789abcdef" * 4


def add_secrets(app) -> None:
    from quota.models import ControllerQuota, QuotaClient
    from sync.models import SyncProducer as Producer
    from tracker.extensions import db

    now = datetime.now(UTC)
    with app.app_context():
        quota = ControllerQuota(
            record_kind="visits",
            target=10,
            window_start=now,
            window_expires=now + timedelta(days=1),
        )
        quota.clients.append(
            QuotaClient(name="laptop", endpoint="http://laptop", secret="s3cret-value")
        )
        db.session.add(quota)
        db.session.add(
            Producer(producer_id="p-1", public_key="k" * 64, encryption_key=DEVICE_KEY)
        )
        db.session.commit()


def stored(database_url: str) -> tuple[str, str]:
    """The secrets as the database holds them."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return (
                connection.execute(text("SELECT secret FROM quota_clients")).scalar(),
                connection.execute(
                    text("SELECT encryption_key FROM sync_producers")
                ).scalar(),
            )
    finally:
        engine.dispose()


def read_secrets(app) -> tuple[str, str]:
    from quota.models import QuotaClient
    from sync.models import SyncProducer as Producer
    from tracker.extensions import db

    with app.app_context():
        return (
            db.session.scalar(select(QuotaClient.secret)),
            db.session.scalar(select(Producer.encryption_key)),
        )


def test_secrets_are_stored_encrypted_and_read_in_clear(make_app, database_url):
    app = make_app(SECRET_KEY=KEY_A)
    add_secrets(app)
    secret, device_key = stored(database_url)
    assert secret.startswith("enc1:") and "s3cret" not in secret
    assert device_key.startswith("enc1:") and DEVICE_KEY not in device_key
    assert read_secrets(app) == ("s3cret-value", DEVICE_KEY)


def test_rotation_re_encrypts_under_the_new_key(make_app, database_url, tmp_path):
    from tracker.crypto import UndecryptableValue

    add_secrets(make_app(SECRET_KEY=KEY_A))
    before = stored(database_url)
    # The new key, with the old one as a fallback, still reads them.
    assert read_secrets(make_app(SECRET_KEY=KEY_B, SECRET_KEY_FALLBACKS=[KEY_A])) == (
        "s3cret-value",
        DEVICE_KEY,
    )
    manage = manage_command(database_url, tmp_path)
    result = manage(
        "rotate-secrets",
        env={
            "TRACKER_SECRET_KEY": KEY_B,
            "TRACKER_SECRET_KEY_FALLBACKS": repr([KEY_A]),
        },
    )
    assert result.returncode == 0, result.stderr
    assert "Re-encrypted 2 stored secret(s)" in result.stdout
    assert stored(database_url) != before
    assert read_secrets(make_app(SECRET_KEY=KEY_B)) == ("s3cret-value", DEVICE_KEY)
    with pytest.raises(UndecryptableValue, match="SECRET_KEY_FALLBACKS"):
        read_secrets(make_app(SECRET_KEY=KEY_A))
    # Without the key that encrypted them, rotation stops with one line.
    refused = manage("rotate-secrets", env={"TRACKER_SECRET_KEY": "c" * 40})
    assert_clean_failure(refused, 1, "cannot be decrypted")
    assert len(refused.stderr.strip().splitlines()) == 1


def test_upgrading_encrypts_existing_secrets_and_downgrading_decrypts_them(
    empty_database_url, tmp_path
):
    manage = manage_command(empty_database_url, tmp_path)
    env = {"TRACKER_SECRET_KEY": KEY_A}
    assert manage("db", "upgrade", "d721e51ea460", env=env).returncode == 0
    engine = create_engine(empty_database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO sync_producers (producer_id, description, public_key,"
                    " encryption_key, active, received_through, highest_received,"
                    " applied_through, created) VALUES ('p-1', '', :public, :key,"
                    " true, 0, 0, 0, '2026-01-01 00:00:00')"
                ),
                {"public": "k" * 64, "key": DEVICE_KEY},
            )
    finally:
        engine.dispose()
    result = manage("db", "upgrade", env=env)
    assert result.returncode == 0, result.stderr
    assert stored(empty_database_url)[1].startswith("enc1:")
    app = build_app(empty_database_url, tmp_path / "instance", SECRET_KEY=KEY_A)
    assert read_secrets(app) == (None, DEVICE_KEY)
    with app.app_context():
        from tracker.extensions import db

        db.engine.dispose()
    result = manage("db", "downgrade", "d721e51ea460", "--yes", env=env)
    assert result.returncode == 0, result.stderr
    assert stored(empty_database_url)[1] == DEVICE_KEY


@pytest.mark.parametrize("where", ["environment", "file"])
def test_a_short_secret_key_is_refused_in_one_line(tmp_path, where):
    from tracker import create_app

    environ = {}
    if where == "environment":
        environ["TRACKER_SECRET_KEY"] = "a"
    else:
        settings = tmp_path / "settings.cfg"
        settings.write_text('SECRET_KEY = "only-31-bytes-long-xxxxxxxxxxxx"\n')
        environ["TRACKER_SETTINGS"] = str(settings)
    with pytest.raises(SettingsError) as error:
        create_app(instance_path=tmp_path / "instance", environ=environ)
    message = str(error.value)
    assert "too short" in message and "32" in message and "\n" not in message
    assert "only-31" not in message
    environ_ok = {**environ, "TRACKER_SECRET_KEY": "k" * 32}
    environ_ok.pop("TRACKER_SETTINGS", None)
    assert create_app(instance_path=tmp_path / "instance", environ=environ_ok)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_instance_folder_database_and_key_are_private(tmp_path):
    from tracker import create_app
    from tracker.extensions import db

    instance = tmp_path / "instance"
    instance.mkdir(mode=0o755)
    instance.chmod(0o755)
    (instance / "secret_key").write_text("k" * 64)
    (instance / "secret_key").chmod(0o644)
    app = create_app(instance_path=instance, environ={})
    with app.app_context():
        db.create_all()
        db.session.execute(text("SELECT 1"))
        db.engine.dispose()
    assert mode(instance) == 0o700
    assert mode(instance / "secret_key") == 0o600
    assert mode(instance / "tracker.sqlite") == 0o600
    fresh = tmp_path / "fresh"
    create_app(instance_path=fresh, environ={})
    assert mode(fresh) == 0o700
    assert mode(fresh / "secret_key") == 0o600

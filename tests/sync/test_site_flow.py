"""Site server -> file -> central server, as an operator runs it: real processes
for every step (tests/sync/processes.py). Field devices push to a site's
middleman over HTTP (one also brings a file), the middleman writes its bundles
as files, and the central server imports the directory with manage.py; the
server then holds exactly the devices' records, each change applied once."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from sync.models import APPLIED, IncomingTransaction, SyncProducer, SyncRecord
from tests.sync.field_app import Household, Member, create_field_app, field_db
from tests.sync.processes import ROOT, child_environment
from tests.sync.support import FIELD_MODELS, field_records, register
from tracker.extensions import db

pytestmark = pytest.mark.slow


def field_device(tmp_path: Path, server, producer_id: str, households: int):
    """A device's database with its changes, and its ``flask --app`` value."""
    credential = register(server, producer_id)[0]
    url = f"sqlite:///{tmp_path / producer_id}.sqlite"
    app = create_field_app(url, producer_id, None, credential)
    with app.app_context():
        session = field_db.session
        homes = [
            Household(
                code=f"{producer_id}/H{n}",
                village="Maun",
                income=Decimal("10.50"),
                enumerated=date(2026, 11, 2),
            )
            for n in range(households)
        ]
        session.add_all(homes)
        session.flush()
        session.add_all(
            Member(identifier=f"{producer_id}/M{n}", household_id=homes[n].id)
            for n in range(households)
        )
        session.commit()
        homes[0].village = "Kanye"
        session.delete(session.scalar(select(Member)))
        session.commit()
        session.remove()
    arguments = f"{url!r}, {producer_id!r}, None, {credential!r}"
    return app, f"tests.sync.field_app:create_field_app({arguments})"


def manage(server, *args: str) -> subprocess.CompletedProcess:
    """``python manage.py ARGS`` on the server's database and instance folder."""
    env = {
        **child_environment(),
        "TRACKER_SQLALCHEMY_DATABASE_URI": server.config["SQLALCHEMY_DATABASE_URI"],
        "TRACKER_INSTANCE_PATH": server.instance_path,
        "TRACKER_SYNC_MODELS": json.dumps(FIELD_MODELS),
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=server.instance_path,
        timeout=300,
        check=False,
    )


def test_site_server_to_file_to_central_server(server, token, processes, tmp_path):
    central = processes.tracker(
        {
            "SQLALCHEMY_DATABASE_URI": server.config["SQLALCHEMY_DATABASE_URI"],
            "SYNC_MODELS": FIELD_MODELS,
        },
        Path(server.instance_path),
    ).wait_until_serving()
    relay_database = f"sqlite:///{tmp_path / 'site-relay.sqlite'}"
    site = processes.relay(relay_database).wait_until_serving()
    relay_app = f"tests.sync.field_app:create_relay_app({relay_database!r})"

    def relay(*args: str) -> str:
        return processes.flask("relay", relay_app, "relay", *args).finish()

    first, first_app = field_device(tmp_path, server, "tablet-1", 40)
    second, second_app = field_device(tmp_path, server, "tablet-2", 25)
    # The site's middleman learns which producers may push to it.
    assert "2 producers may push here." in relay("keys", central.url, "--token", token)

    push = processes.flask(
        "push", first_app, "sync", "push", site.url, "--batch-size", "30"
    ).finish()
    assert "Pushed 82 transactions in 3 bundles" in push
    # The second device's changes reach the site on a stick.
    carried = tmp_path / "stick" / "tablet-2.jsonl.gz"
    carried.parent.mkdir()
    export = processes.flask(
        "export", second_app, "sync", "export", str(carried), "--per-file", "20"
    ).finish()
    assert "Wrote 20 transactions (1-20)" in export
    assert "Wrote 12 transactions (41-52)" in export
    carried_files = sorted(str(path) for path in carried.parent.iterdir())
    assert len(carried_files) == 3
    imported = relay("import", *carried_files)
    assert imported.count("kept") == 3

    out = tmp_path / "to-central"
    exported = relay("export", str(out))
    assert "Wrote 6 bundle files." in exported
    assert "0 bundles waiting to be forwarded" in relay("status")
    assert "Wrote 0 bundle files." in relay("export", str(out))

    result = manage(server, "sync", "import", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("new") == 6
    again = manage(server, "sync", "import", str(out))
    assert again.returncode == 0 and again.stdout.count("already imported") == 6

    expected = {**field_records(first), **field_records(second)}
    with server.app_context():
        records = db.session.scalars(
            select(SyncRecord).where(SyncRecord.deleted.is_(None))
        ).all()
        assert {(r.model, r.natural_key): r.fields for r in records} == expected
        # Each household: an insert, then one update for the first; each member:
        # an insert (the deleted one is gone).
        versions = sorted({r.version for r in records})
        assert versions == [1, 2]
        statuses = set(db.session.scalars(select(IncomingTransaction.status)))
        assert statuses == {APPLIED}
        cursors = dict(
            db.session.execute(
                select(SyncProducer.producer_id, SyncProducer.applied_through)
            ).all()
        )
    assert cursors == {"tablet-1": 82, "tablet-2": 52}

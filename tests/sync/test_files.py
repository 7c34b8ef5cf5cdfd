"""Carried files: exported on the device, imported on the server, in any order,
once; truncated, altered, re-ordered or foreign files are refused with a reason."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from sync.client.transfer import export
from sync.deliveries import AlreadyImported, DeliverySettings, import_file
from sync.models import ImportedFile, IncomingTransaction, SyncRecord
from sync.wire.bundles import (
    BundleError,
    make_bundle,
    read_bundle_path,
    write_bundle_file,
)
from tests.sync.field_app import (
    Household,
    Member,
    OutgoingTransaction,
    ProducerState,
    field_db,
)
from tests.sync.support import field_records, server_records
from tracker.batch.models import BatchOperation
from tracker.extensions import db


def export_to(field_app, path, **options):
    with field_app.app_context():
        summary = export(
            field_db.session, OutgoingTransaction, ProducerState, path, **options
        )
        field_db.session.remove()
        return summary


def add_households(field_app, codes, village="Mochudi"):
    with field_app.app_context():
        for code in codes:
            household = Household(code=code, village=village)
            field_db.session.add(household)
            field_db.session.flush()
            field_db.session.add(
                Member(identifier=f"{code}-1", household_id=household.id)
            )
        field_db.session.commit()
        field_db.session.remove()


def import_into(server_app, path):
    # Small runs, so a file is applied in several committed runs.
    settings = replace(DeliverySettings.from_config(server_app.config), run_size=7)
    with server_app.app_context():
        return import_file(db.session, path, settings, db.session.commit, 10**8)


def rewrite(path, change):
    """Rewrite a file's JSON lines through ``change`` and compress it again."""
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    path.write_bytes(gzip.compress(("\n".join(change(lines)) + "\n").encode()))


@pytest.fixture
def field(server, make_field):
    return make_field(server, "laptop-3")


def test_files_carried_out_of_order_are_held_then_applied_once(server, field, tmp_path):
    add_households(field, ["H1", "H2"])
    first = export_to(field, tmp_path / "first.jsonl.gz")
    add_households(field, ["H3"])
    second = export_to(field, tmp_path / "second.jsonl.gz")
    assert (first.first_sequence, first.last_sequence) == (1, 4)
    assert (second.first_sequence, second.last_sequence) == (5, 6)
    assert export_to(field, tmp_path / "third.jsonl.gz") is None

    reply = import_into(server, second.path)
    assert reply["missing"] == [[1, 4]] and reply["applied"] == 0
    assert server_records(server) == {}

    reply = import_into(server, first.path)
    assert reply["missing"] == [] and reply["applied"] == 6
    assert server_records(server) == field_records(field)
    with pytest.raises(AlreadyImported, match="already imported"):
        import_into(server, first.path)
    with server.app_context():
        assert db.session.scalar(select(func.count(ImportedFile.id))) == 2
        assert set(db.session.scalars(select(SyncRecord.version))) == {1}


def test_a_re_export_overlapping_earlier_files_changes_nothing(server, field, tmp_path):
    add_households(field, ["H1"])
    import_into(server, export_to(field, tmp_path / "a.jsonl.gz").path)
    add_households(field, ["H2"])
    again = export_to(field, tmp_path / "b.jsonl.gz", from_sequence=1)
    reply = import_into(server, again.path)
    assert (reply["new"], reply["duplicates"]) == (2, 2)
    assert server_records(server) == field_records(field)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda lines: lines[:-1], "incomplete"),
        (lambda lines: [lines[0], lines[2], lines[1], *lines[3:]], "out of order"),
        (lambda lines: [*lines, lines[-1]], "incomplete"),
        (
            lambda lines: [lines[0], lines[1].replace("Mochudi", "Gabane"), *lines[2:]],
            "altered",
        ),
        (
            lambda lines: [lines[0].replace('"count":4', '"count":3'), *lines[1:]],
            "does not match",
        ),
    ],
    ids=["missing-line", "reordered", "duplicated-line", "tampered", "manifest"],
)
def test_damaged_files_are_refused_whole(server, field, tmp_path, damage, reason):
    add_households(field, ["H1", "H2"])
    path = export_to(field, tmp_path / "damaged.jsonl.gz").path
    rewrite(path, damage)
    with pytest.raises(BundleError, match=reason):
        import_into(server, path)
    with server.app_context():
        assert db.session.scalar(select(func.count(IncomingTransaction.id))) == 0
        failed = db.session.scalar(
            select(BatchOperation).where(BatchOperation.operation_type == "sync-import")
        )
        assert failed.result == "failed" and failed.error


def test_a_truncated_file_is_refused_with_a_clear_reason(server, field, tmp_path):
    add_households(field, ["H1", "H2"])
    path = export_to(field, tmp_path / "cut.jsonl.gz").path
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(BundleError, match="truncated"):
        import_into(server, path)
    assert server_records(server) == {}


def test_a_file_signed_with_another_producers_credential_is_refused(
    server, make_field, tmp_path
):
    mallory = make_field(server, "laptop-9")
    make_field(server, "laptop-3")
    add_households(mallory, ["H1"])
    with mallory.app_context():
        credential = field_db.session.scalar(select(ProducerState.credential))
        field_db.session.remove()
    path = export_to(mallory, tmp_path / "own.jsonl.gz").path
    # Claim to be laptop-3, signing a well-formed bundle with laptop-9's key.
    posing = [
        {**transaction, "producer": "laptop-3"}
        for transaction in read_bundle_path(path).transactions
    ]
    forged = tmp_path / "forged.jsonl.gz"
    with open(forged, "wb") as stream:
        write_bundle_file(make_bundle(posing, credential), stream)
    with pytest.raises(BundleError, match="not signed by producer 'laptop-3' with"):
        import_into(server, forged)
    assert server_records(server) == {}


def test_a_model_off_the_allow_list_is_held_not_applied(make_app, make_field, tmp_path):
    server = make_app(SYNC_MODELS=["Household"])
    field = make_field(server, "laptop-3")
    add_households(field, ["H1"])
    reply = import_into(server, export_to(field, tmp_path / "f.jsonl.gz").path)
    assert reply["held"] == [
        {
            "sequence": 2,
            "reason": "model 'Member' is not on SYNC_MODELS: held, and applied"
            " once it is listed",
        }
    ]
    assert list(server_records(server)) == [("Household", '["H1"]')]


def test_export_file_is_compressed_json_lines_with_a_manifest(field, tmp_path):
    add_households(field, ["H1"])
    path = export_to(field, tmp_path / "f.jsonl.gz").path
    with gzip.open(path) as stream:
        lines = [json.loads(line) for line in stream]
    manifest = lines[0]["manifest"]
    assert manifest["producer"] == "laptop-3"
    assert (manifest["first_sequence"], manifest["last_sequence"]) == (1, 2)
    assert manifest["models"] == {"Household": 1, "Member": 1}
    assert len(manifest["sha256"]) == 64 and lines[0]["signature"]
    assert [line["sequence"] for line in lines[1:]] == [1, 2]


def test_export_writes_every_pending_transaction_in_capped_files(
    server, field, tmp_path
):
    add_households(field, [f"H{n}" for n in range(12)])  # 24 transactions
    runner = field.test_cli_runner()
    target = tmp_path / "out.jsonl.gz"
    first = runner.invoke(
        args=["sync", "export", str(target), "--per-file", "10", "--max-files", "1"]
    )
    assert first.exit_code == 1
    assert "Wrote 10 transactions (1-10)" in first.output
    assert "14 transactions remain unexported: run flask sync export again" in (
        first.output
    )
    rest = runner.invoke(
        args=["sync", "export", str(tmp_path / "rest.jsonl.gz"), "--per-file", "10"]
    )
    assert rest.exit_code == 0, rest.output
    assert f"(11-20) to {tmp_path / 'rest.jsonl.gz'}" in rest.output
    assert f"(21-24) to {tmp_path / 'rest-2.jsonl.gz'}" in rest.output
    assert "remain" not in rest.output
    for name in ("rest-2.jsonl.gz", "out.jsonl.gz", "rest.jsonl.gz"):
        import_into(server, tmp_path / name)
    assert server_records(server) == field_records(field)
    # No file holds more than a server takes.
    past = runner.invoke(args=["sync", "export", str(target), "--per-file", "100001"])
    assert past.exit_code == 2 and "100000" in past.output


def test_an_export_never_overwrites_a_file_not_yet_carried(server, field, tmp_path):
    add_households(field, ["H1"])
    runner = field.test_cli_runner()
    target = tmp_path / "out.jsonl.gz"
    first = runner.invoke(args=["sync", "export", str(target)])
    assert first.exit_code == 0, first.output
    kept = target.read_bytes()
    add_households(field, ["H2"])
    again = runner.invoke(args=["sync", "export", str(target)])
    assert again.exit_code == 1
    [line] = again.output.strip().splitlines()
    assert str(target) in line and "exists" in line and "another" in line
    assert target.read_bytes() == kept
    # Nothing was counted as exported: the next file holds sequences 3-4.
    other = runner.invoke(args=["sync", "export", str(tmp_path / "next.jsonl.gz")])
    assert other.exit_code == 0 and "(3-4)" in other.output, other.output
    for name in ("out.jsonl.gz", "next.jsonl.gz"):
        import_into(server, tmp_path / name)
    assert server_records(server) == field_records(field)


def test_an_export_checks_every_file_name_before_writing_any(field, tmp_path):
    add_households(field, ["H1", "H2"])
    runner = field.test_cli_runner()
    (tmp_path / "b-2.jsonl.gz").write_bytes(b"an earlier export")
    target = tmp_path / "b.jsonl.gz"
    refused = runner.invoke(args=["sync", "export", str(target), "--per-file", "1"])
    assert refused.exit_code == 1
    [line] = refused.output.strip().splitlines()
    assert "b-2.jsonl.gz exists" in line
    assert not target.exists()
    # Nothing was marked exported: another name writes everything.
    again = runner.invoke(
        args=["sync", "export", str(tmp_path / "c.jsonl.gz"), "--per-file", "1"]
    )
    assert again.exit_code == 0, again.output
    assert "(1-1)" in again.output and (tmp_path / "c-2.jsonl.gz").exists()

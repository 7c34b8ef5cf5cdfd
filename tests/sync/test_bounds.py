"""Pushes and files are read within bounds: a 4xx naming the field for every
hostile body, never a 5xx, and nothing stored."""

from __future__ import annotations

import gzip
import io
import json

import pytest
from sqlalchemy import func, select

from sync.models import IncomingTransaction
from sync.wire import bundles
from sync.wire.bundles import make_bundle, write_bundle_file
from tests.sync.support import register, wire
from tracker.batch.models import STATUS_FINISHED, BatchOperation

PUSH = "/api/sync/push"
FILES = "/api/sync/files"


@pytest.fixture
def credential(server):
    return register(server, "tablet-1")[0]


def household(sequence, code="H1"):
    return wire("tablet-1", sequence, "Household", [code], "insert", {"v": "Mochudi"})


def gzipped(*lines: bytes) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as out:
        for line in lines:
            out.write(line)
    return buffer.getvalue()


def file_of(credential, *transactions) -> bytes:
    buffer = io.BytesIO()
    write_bundle_file(make_bundle(list(transactions), credential), buffer)
    return buffer.getvalue()


def stored(server) -> int:
    from tracker.extensions import db

    with server.app_context():
        return db.session.scalar(select(func.count(IncomingTransaction.id)))


def test_a_push_past_the_batch_is_413_before_it_is_all_read(server):
    server.config["SYNC_MAX_BATCH"] = 10
    body = b'{"transactions": [' + b",".join([b"{}"] * 5000) + b"]}"
    reply = server.test_client().post(PUSH, data=body, content_type="application/json")
    assert reply.status_code == 413
    assert reply.json["field"] == "transactions"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (
            b'{"transactions": [{"natural_key": ' + b"[" * 5000,
            400,
            "transactions[].natural_key",
        ),
        (
            b'{"transactions": [{"natural_key": ' + b"[" * 5000 + b"]" * 5000 + b"}]}",
            400,
            "transactions[].natural_key",
        ),
        (b'{"manifest": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "manifest"),
        (b'{"manifest": {"models": {' + b'"a": 1,' * 20000 + b'"b": 1}}}', 413, None),
        (b"[1, 2]", 400, "body"),
        (b'{"transactions": [1, 2] "x"}', 400, "body"),
        (b'{"signature": "\xff\xfe"}', 400, "body"),
    ],
    ids=["cut", "deep-key", "deep-manifest", "many-values", "array", "bad", "utf8"],
)
def test_hostile_push_bodies_are_4xx_naming_the_field(server, body, status, field):
    server.config["SYNC_MAX_BATCH"] = 10  # at most 13,000 values
    reply = server.test_client().post(PUSH, data=body, content_type="application/json")
    assert reply.status_code == status, reply.json
    if field is not None:
        assert reply.json["field"] == field
    assert stored(server) == 0


@pytest.mark.parametrize("where", ["model", "producer"])
def test_a_lone_surrogate_in_a_push_is_a_4xx(server, credential, where):
    body = make_bundle([household(1)], credential).as_json()
    text = json.dumps(body)
    if where == "model":
        text = text.replace('"Household"', '"House\\ud800hold"')
    else:
        text = text.replace('"tablet-1"', '"tablet-\\udfff1"')
    reply = server.test_client().post(PUSH, data=text, content_type="application/json")
    assert 400 <= reply.status_code < 500
    assert stored(server) == 0


def test_a_signed_payload_nesting_5000_deep_is_quarantined(server, credential):
    transaction = household(1)
    transaction["payload"] = (
        '{"fields": {"v": ' + "[" * 5000 + "]" * 5000 + '}, "parents": {},'
        ' "schema_version": 1}'
    )
    body = make_bundle([transaction], credential).as_json()
    reply = server.test_client().post(PUSH, json=body)
    assert reply.status_code == 200
    assert [q["reason"] for q in reply.json["quarantined"]] == [
        "the payload nests too deep"
    ]
    from tracker.extensions import db

    with server.app_context():
        operation = db.session.get(BatchOperation, reply.json["operation"])
        assert operation.status == STATUS_FINISHED


def upload(server, auth_headers, data: bytes):
    return server.test_client().post(
        FILES, data=data, headers={**auth_headers, "Content-Type": "application/gzip"}
    )


def test_a_deeply_nested_file_line_is_400(server, credential, auth_headers):
    good = file_of(credential, household(1))
    head = gzip.decompress(good).split(b"\n")[0]
    deep = b'{"natural_key": ' + b"[" * 5000 + b"]" * 5000 + b"}\n"
    reply = upload(server, auth_headers, gzipped(head + b"\n", deep))
    assert reply.status_code == 400
    assert "nests deeper" in reply.json["message"]


def test_a_gzip_bomb_is_413_once_the_inflated_cap_is_passed(
    server, credential, auth_headers
):
    server.config["SYNC_MAX_FILE_BYTES"] = 64 * 1024
    head = gzip.decompress(file_of(credential, household(1))).split(b"\n")[0]
    reply = upload(server, auth_headers, gzipped(head, b" " * (32 * 1024 * 1024)))
    assert reply.status_code == 413
    assert "bytes uncompressed" in reply.json["message"]


def test_a_line_past_its_cap_is_413(server, credential, auth_headers, monkeypatch):
    monkeypatch.setattr(bundles, "MAX_LINE_BYTES", 4096)
    head = gzip.decompress(file_of(credential, household(1))).split(b"\n")[0]
    reply = upload(server, auth_headers, gzipped(head + b"\n", b"[" + b" " * 10000))
    assert reply.status_code == 413
    assert "longer than 4096 bytes" in reply.json["message"]


def test_a_forged_manifest_is_refused_on_the_first_line(
    server, credential, auth_headers
):
    other = register(server, "tablet-2")[0]
    head, *_lines = gzip.decompress(file_of(other, household(1))).split(b"\n")
    forged = json.loads(head)
    forged["manifest"]["producer"] = "tablet-1"  # signed by tablet-2's key
    # A line that could not be read: the file is refused before it.
    bad = b"not json at all\n"
    data = gzipped(json.dumps(forged).encode() + b"\n", bad)
    reply = upload(server, auth_headers, data)
    assert reply.status_code == 403
    assert reply.json["field"] == "signature"


def test_more_lines_than_the_manifest_announces_stop_the_read(
    server, credential, auth_headers
):
    head, line, _ = gzip.decompress(file_of(credential, household(1))).split(b"\n")
    data = gzipped(head + b"\n", *[line + b"\n"] * 3)
    reply = upload(server, auth_headers, data)
    assert reply.status_code == 400
    assert "more than the 1 transactions" in reply.json["message"]


@pytest.fixture
def relay(tmp_path):
    from tests.sync.field_app import create_relay_app, field_db

    app = create_relay_app(f"sqlite:///{tmp_path / 'relay.sqlite'}")
    yield app
    with app.app_context():
        field_db.session.remove()
        field_db.engine.dispose()


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b'{"transactions": [{"natural_key": ' + b"[" * 5000, 400, None),
        (b'{"transactions": [' + b",".join([b"{}"] * 20000) + b"]}", 413, None),
        (b"x" * (33 * 1024 * 1024), 413, "body"),
    ],
    ids=["deep", "batch", "size"],
)
def test_a_middleman_reads_pushes_within_the_same_bounds(relay, body, status, field):
    reply = relay.test_client().post(PUSH, data=body, content_type="application/json")
    assert reply.status_code == status
    if field is not None:
        assert reply.json["field"] == field


def test_a_deeply_nested_push_is_refused_in_bounded_memory():
    """ijson makes every event of one read at once, each with a prefix as long
    as its depth: a 0.2 MB push nesting 100,000 deep once cost 10 GB."""
    import subprocess
    import sys
    from pathlib import Path

    script = """
import resource
from sync.wire.bounded import JsonRefused, load_bounded
depth = 100_000
body = b'{"transactions":[' + b"[" * depth + b"]" * depth + b"]}"
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_bounded(body, max_depth=16, max_values=10**6, limits={"transactions": 1000})
except JsonRefused as exc:
    print(exc.field, exc.message)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
        check=True,
    )
    refusal, growth_mb = result.stdout.strip().splitlines()
    assert refusal == "transactions nests deeper than 16"
    assert int(growth_mb) < 50

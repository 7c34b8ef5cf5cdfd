"""Input never answers 5xx: each case once seen as a 500 is a 4xx naming what
is wrong, anonymous or behind credentials."""

from __future__ import annotations

import pytest

from allocation.sacct import NOT_TEXT_PROBLEM
from tests.support import chunked_request, raw_status

MALFORMED_SIZES = [b"zz", b"-5", b"1" * 40, b"\xff"]


@pytest.mark.parametrize("size", MALFORMED_SIZES, ids=["hex", "neg", "long", "byte"])
@pytest.mark.parametrize("path", ["/api/instance/", "/api/sync/push"])
def test_a_malformed_chunk_size_is_4xx_on_the_threaded_server(live_server, path, size):
    status = raw_status(live_server, chunked_request(path, size))
    assert 400 <= status < 500


@pytest.mark.parametrize(
    "path",
    [
        "/?page=99999999999999999999",
        "/batch-operations?page=99999999999999999999",
        "/?per_page=123456789012",
        "/api/instances?page=99999999999999999999",
        "/api/batch-operations?page=99999999999999999999",
        "/api/allocation/projects?page=99999999999999999999",
    ],
)
def test_a_huge_page_is_400(signed_in, auth_headers, path):
    headers = auth_headers if path.startswith("/api/") else {}
    reply = signed_in.get(path, headers=headers)
    assert reply.status_code == 400


def test_a_page_past_the_last_is_an_empty_page(signed_in):
    assert signed_in.get("/?page=999999999").status_code in (200, 404)


@pytest.mark.parametrize(
    ("collection", "body", "field"),
    [
        ("projects", {"name": "P", "parent_id": 2**70}, "parent_id"),
        ("projects", {"name": "P", "parent_id": 2**31}, "parent_id"),
        ("projects", {"name": "P", "parent_id": -1}, "parent_id"),
        ("projects", {"name": "P\ud800"}, "name"),
        ("machines", {"name": "\udfffM"}, "name"),
        ("projects", {"name": "P", "description": "a\ud83dz"}, "description"),
    ],
)
def test_allocation_records_refuse_huge_ids_and_lone_surrogates(
    client, auth_headers, collection, body, field
):
    reply = client.post(
        f"/api/allocation/{collection}", json=body, headers=auth_headers
    )
    assert reply.status_code == 400, reply.get_json()
    assert reply.get_json()["field"] == field


def test_an_allocation_upload_not_utf8_mid_file_reports_the_line(client, auth_headers):
    step = b"1.batch|x|p|2100-01-01T00:00:00|2100-01-01T01:00:00|01:00:00|1\n"
    body = (
        b"JobID|Cluster|Account|Start|End|Elapsed|AllocCPUS\n"
        + step * 100_000
        + b"\xff\xfe\n"
    )
    reply = client.post(
        "/api/allocation/usage/sacct",
        data=body,
        headers={**auth_headers, "Content-Type": "text/plain"},
    )
    assert reply.status_code == 201, reply.get_json()
    output = reply.get_json()["output"]
    assert output["skipped"] == 100_000
    assert output["problems"] == [{"line": 100_002, "message": NOT_TEXT_PROBLEM}]


def test_an_allocation_upload_with_an_endless_line_is_400(client, auth_headers):
    body = b"JobID|Cluster\n" + b"x" * (200 * 1024)
    reply = client.post(
        "/api/allocation/usage/sacct",
        data=body,
        headers={**auth_headers, "Content-Type": "text/plain"},
    )
    assert reply.status_code == 400
    assert "line 2 is longer than" in reply.get_json()["message"]


def test_an_allocation_upload_past_its_cap_is_413(make_app, auth_headers):
    app = make_app(ALLOCATION_UPLOAD_MAX_BYTES=4096)
    reply = app.test_client().post(
        "/api/allocation/usage/sacct",
        data=b"JobID|Cluster\n" * 1000,
        headers={**auth_headers, "Content-Type": "text/plain"},
    )
    assert reply.status_code == 413

"""The shipped gunicorn.conf.py under real gunicorn: slow clients do not starve
the others, and the logs never show an instance's uuid."""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading

import pytest
import requests

from tests.services import start_gunicorn
from tests.support import REGISTRATION, chunked_request, raw_status

UUID = "0b5e4f0e-3c1a-4c39-9b1e-6c2b0e6a5d11"
SLOW_CLIENTS = 16
PROBES = 8
# Generous: a starved server never answers at all (it did not in 40 s).
PROBE_TIMEOUT = 20


@pytest.fixture
def database_file(sqlite_schema, tmp_path):
    path = tmp_path / "served.sqlite"
    shutil.copyfile(sqlite_schema, path)
    return f"sqlite:///{path}"


@pytest.fixture
def gunicorn(database_file, tmp_path):
    server = start_gunicorn(database_file, tmp_path)
    yield server
    server.stop()


class SlowHeaderClients:
    """Sockets that send a request's headers one short line at a time, forever."""

    def __init__(self, url: str, count: int) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sockets = [
            socket.create_connection((host, int(port))) for _ in range(count)
        ]
        for sock in self.sockets:
            sock.sendall(b"GET /login HTTP/1.1\r\nHost: tracker\r\n")
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self) -> None:
        line = 0
        while not self.stopped.wait(0.5):
            line += 1
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.sendall(f"X-Slow-{line}: x\r\n".encode())

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()


def test_normal_requests_answer_while_sixteen_clients_trickle_headers(gunicorn):
    slow = SlowHeaderClients(gunicorn.url, SLOW_CLIENTS)
    try:
        answers = []
        for number in range(PROBES):
            if number % 2:
                reply = requests.get(f"{gunicorn.url}/login", timeout=PROBE_TIMEOUT)
            else:
                reply = requests.post(
                    f"{gunicorn.url}/api/instance/",
                    json=REGISTRATION,
                    timeout=PROBE_TIMEOUT,
                )
            answers.append(reply.status_code)
    finally:
        slow.close()
    assert answers == [201, 200] * (PROBES // 2)


def test_the_access_log_masks_instance_uuids(gunicorn):
    base = gunicorn.url
    requests.get(f"{base}/api/instance/{UUID}", timeout=10)
    encoded = UUID.replace("b", "%62")
    requests.patch(
        f"{base}/instance/{encoded}",
        json={},
        headers={"Referer": f"{base}/instances/{UUID}"},
        timeout=10,
    )
    requests.get(f"{base}/login?next=/instances/{UUID}", timeout=10)
    gunicorn.stop()
    log = gunicorn.log_text()
    assert '"GET /api/instance/<uuid> HTTP/1.1" 404' in log
    assert '"PATCH /instance/<uuid> HTTP/1.1" 404' in log
    assert f'"{base}/instances/<uuid>"' in log
    assert "next=/instances/<uuid>" in log
    assert UUID not in log
    assert "%62" not in log


def test_request_lines_and_headers_past_the_limits_are_refused(gunicorn):
    long_line = requests.get(f"{gunicorn.url}/login?q={'x' * 9000}", timeout=10)
    assert long_line.status_code == 414
    many = {f"X-Header-{n}": "x" for n in range(120)}
    refused = requests.get(f"{gunicorn.url}/login", headers=many, timeout=10)
    assert refused.status_code == 431


@pytest.mark.parametrize("size", [b"zz", b"-5", b"1" * 40])
def test_a_malformed_chunk_size_is_4xx_under_gunicorn(gunicorn, size):
    for path in ("/api/instance/", "/api/sync/push"):
        status = raw_status(gunicorn.url, chunked_request(path, size))
        assert 400 <= status < 500, (path, status)


def test_metrics_add_up_every_worker(gunicorn):
    from prometheus_client.parser import text_string_to_metric_families

    for _ in range(12):
        assert requests.get(f"{gunicorn.url}/login", timeout=10).status_code == 200
    text = requests.get(f"{gunicorn.url}/metrics", timeout=10).text
    counted = {
        sample.labels["route"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "tracker_http_requests_total"
    }
    assert counted["/login"] == 12
    assert "tracker_instances" in text  # the database's figures too

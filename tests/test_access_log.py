"""The access log's values: those its format names, with uuids masked."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

from gunicorn.config import Config
from gunicorn.glogging import SafeAtoms

from tracker.serving import RedactingLogger

UUID = "5a0b6b8e-3c1f-4e63-9d2a-1f0c8e7b6a55"


def logged_line(access_log_format: str) -> str:
    config = Config()
    config.set("access_log_format", access_log_format)
    logger = RedactingLogger(config)
    environ = {
        "REMOTE_ADDR": "192.0.2.7",
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"/api/instance/{UUID}?x=1",
        "PATH_INFO": f"/api/instance/{UUID}",
        "QUERY_STRING": "x=1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_REFERER": f"https://tracker.example.org/instances/{UUID}",
        "HTTP_USER_AGENT": "indico-client/3.3",
        "wsgi.url_scheme": "https",
    }
    request = SimpleNamespace(headers=[("X-REQUEST-ID", "abc"), ("X-INSTANCE", UUID)])
    response = SimpleNamespace(
        status="404 NOT FOUND", sent=27, headers=[("Content-Type", "application/json")]
    )
    took = datetime.timedelta(seconds=1, microseconds=2500)
    atoms = logger.atoms(response, request, environ, took)
    return access_log_format % SafeAtoms(atoms)


def test_the_shipped_format_logs_what_it_names_with_uuids_masked():
    line = logged_line('%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(f)s" "%(a)s"')
    assert line == (
        '192.0.2.7 "GET /api/instance/<uuid>?x=1 HTTP/1.1" 404 27 1002ms '
        '"https://tracker.example.org/instances/<uuid>" "indico-client/3.3"'
    )


def test_headers_and_wsgi_variables_are_logged_when_a_format_names_them():
    line = logged_line(
        "%({x-request-id}i)s %({X-Instance}i)s %({content-type}o)s "
        "%({wsgi.url_scheme}e)s %(U)s %(m)s %(missing)s"
    )
    assert line == "abc <uuid> application/json https /api/instance/<uuid> GET -"

"""What tests share: signing in through the real forms (test client and Chromium),
the database seen from outside a request, the app served on loopback, sample data."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from tracker.extensions import db as database

USERNAME = "ada"
PASSWORD = "correct horse"
# A registration as the registry's real clients send it.
REGISTRATION = {
    "url": "https://indico.example.org",
    "contact": "Ada Lovelace",
    "email": "ada@example.org",
    "organisation": "Analytical Engines",
}
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
CSRF_FIELD = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def csrf_token(client, path: str) -> str:
    """The CSRF token of the first form on the page at ``path``."""
    return CSRF_FIELD.search(client.get(path).get_data(as_text=True)).group(1)


class Login:
    """Signs a test client in and out through the forms, CSRF token and all."""

    def __init__(self, client) -> None:
        self.client = client

    def __call__(
        self,
        username: str = USERNAME,
        password: str = PASSWORD,
        next_path: str | None = None,
    ):
        """Post the sign-in form; return the response."""
        token = csrf_token(self.client, "/login")
        path = "/login" + (f"?next={next_path}" if next_path else "")
        return self.client.post(
            path,
            data={"username": username, "password": password, "csrf_token": token},
        )

    def logout(self):
        """Post the sign-out form of the home page; return the response."""
        token = csrf_token(self.client, "/")
        return self.client.post("/logout", data={"csrf_token": token})


class Database:
    """The app's database from outside a request: every use opens an app context
    of its own, as a request or a task does, so nothing stays cached between."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.app.app_context():
            yield database.session

    def scalar(self, statement) -> Any:
        with self.session() as session:
            return session.scalar(statement)

    def count(self, model: type) -> int:
        """How many rows ``model`` has."""
        return self.scalar(select(func.count()).select_from(model))


# How often a served app's loop looks for its shutdown: stopping waits this long.
SHUTDOWN_POLL_SECONDS = 0.02


@contextmanager
def serve(app: Flask, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` with a real threaded HTTP server on a loopback address of
    its own choosing; yield its URL."""
    server = make_server(host, 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,), daemon=True
    )
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@contextmanager
def signed_in_tab(browser, base_url: str, password: str = PASSWORD) -> Iterator:
    """A Chromium tab signed in as ``ada`` through the sign-in page; its
    ``requested`` and ``errors`` list every request made and every page error."""
    context = browser.new_context(
        base_url=base_url, viewport={"width": 1366, "height": 900}
    )
    try:
        tab = context.new_page()
        tab.requested = []
        tab.on("request", lambda request: tab.requested.append(request.url))
        tab.errors = []
        tab.on("pageerror", lambda error: tab.errors.append(str(error)))
        tab.goto("/login")
        tab.fill("#username", USERNAME)
        tab.fill("#password", password)
        tab.click("button[type=submit]")
        tab.wait_for_url(base_url + "/")
        yield tab
    finally:
        context.close()


def screenshot(tab, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def raw_status(base_url: str, request_bytes: bytes, timeout: float = 20) -> int:
    """Send ``request_bytes`` as they are to the server at ``base_url``; return
    the status code of its answer (0 if it closed without one)."""
    import socket

    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request_bytes)
        sock.shutdown(socket.SHUT_WR)  # all is sent: a short body ends here
        answer = b""
        while b"\r\n" not in answer:
            block = sock.recv(4096)
            if not block:
                break
            answer += block
    status_line = answer.split(b"\r\n", 1)[0].split()
    return int(status_line[1]) if len(status_line) > 1 else 0


def chunked_request(path: str, chunk_size_line: bytes) -> bytes:
    """A POST whose chunked body has ``chunk_size_line`` as its first size."""
    return (
        (
            f"POST {path} HTTP/1.1\r\nHost: tracker\r\nConnection: close\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
        + chunk_size_line
        + b"\r\n{}\r\n0\r\n\r\n"
    )


# Pages that only a signed-out visitor sees.
SIGNED_OUT_ENDPOINTS = {"auth.login"}
# Single sign-on's way to the provider and back: redirects, 404 while it is off.
NOT_PAGES = {"oidc.login", "oidc.callback"}


def page_paths(app, ids: dict) -> dict[str, str]:
    """endpoint -> path of every GET route that may render a page (the API and
    static files left out), with the seeded ids in its arguments."""
    paths = {}
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            blueprint = rule.endpoint.rpartition(".")[0]
            if (
                "GET" not in rule.methods
                or blueprint.endswith("_api")
                or rule.endpoint == "static"
                or rule.endpoint in NOT_PAGES
                or rule.endpoint.endswith(".static")
                or rule.rule.startswith("/api/")
                or rule.rule.endswith((".csv", ".jsonl"))  # a download, not a page
            ):
                continue
            unknown = set(rule.arguments) - set(ids)
            assert not unknown, (
                f"{rule.rule} takes {unknown}: seed data for it in seed_domains()"
            )
            paths[rule.endpoint] = url_for(
                rule.endpoint, **{name: ids[name] for name in rule.arguments}
            )
    return paths


def visit(tab, path: str) -> bool:
    """Open ``path``; True if it answered a page (not JSON, not a redirect)."""
    response = tab.goto(path)
    assert response.status < 400, (path, response.status)
    return response.headers.get("content-type", "").startswith("text/html")


# axe-core, pinned in package.json and installed by scripts/build-assets.
AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"
# The WCAG 2 A and AA rules; what a page must not break at all.
AXE_RUN = """() => axe.run(document, {
  runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
}).then((results) => results.violations
  .filter((v) => v.impact === "serious" || v.impact === "critical")
  .map((v) => ({id: v.id, impact: v.impact,
                nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" "))})))"""


def with_axe(context) -> None:
    """Load axe-core into every page the browser context opens (as an init
    script: the page's own Content-Security-Policy does not apply to it)."""
    from tests.services import unavailable

    if not AXE.exists():
        unavailable("axe-core not installed: run scripts/build-assets")
    context.add_init_script(path=str(AXE))


def serious_violations(tab) -> list[dict]:
    """The page's serious and critical accessibility violations, by axe-core."""
    return tab.evaluate(AXE_RUN)


def instance_path(client, uuid: str) -> str:
    """The page of the instance with this uuid (pages name instances by
    number; its uuid's old address leads there)."""
    answer = client.get(f"/instances/{uuid}")
    assert answer.status_code == 302, answer.status_code
    return answer.headers["Location"]

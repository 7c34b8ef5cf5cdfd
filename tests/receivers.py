"""Real receivers of notifications on loopback: an HTTP hook (Apprise's
``json://``) and an SMTP server (aiosmtpd) for ``mailto://``."""

from __future__ import annotations

import json
import threading
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from tests.services import free_port


class HookReceiver:
    """Collects the JSON bodies POSTed to it; answers 500 to the first
    ``failures`` requests (a destination that is down for a while)."""

    def __init__(self, failures: int = 0) -> None:
        self.received: list[dict] = []
        self.failures = failures
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.attempts += 1
                    failing = receiver.attempts <= receiver.failures
                    if not failing:
                        receiver.received.append(json.loads(body))
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> HookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()


class MailReceiver:
    """A local SMTP server keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                receiver.messages.append(
                    message_from_bytes(envelope.content, policy=default_policy)
                )
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return (
            f"mailto://127.0.0.1:{self.port}"
            "?from=tracker@example.org&to=ops@example.org&mode=insecure"
        )

    def __enter__(self) -> MailReceiver:
        self.controller.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.controller.stop()

"""What ``gunicorn.conf.py`` plugs into gunicorn: an access and error log that
never shows an instance's uuid, and connections closed without waiting."""

from __future__ import annotations

import contextlib
import re
import socket
from functools import cache
from types import SimpleNamespace
from typing import Any

from gunicorn.glogging import Logger

from tracker.redaction import mask_uri

UUID_LENGTH = 36
_FORMAT_KEY = re.compile(r"%\(([^)]+)\)")
# The WSGI variables gunicorn's own values (h, u, r, m, U, q, H, f, a) come from.
_ENVIRON_FOR_ATOMS = (
    "REMOTE_ADDR",
    "REQUEST_METHOD",
    "RAW_URI",
    "SERVER_PROTOCOL",
    "PATH_INFO",
    "QUERY_STRING",
    "HTTP_REFERER",
    "HTTP_USER_AGENT",
    "HTTP_AUTHORIZATION",
)


@cache
def _named_in(access_log_format: str) -> tuple[frozenset[str], bool, bool, bool]:
    """The keys an access-log format names, and whether it names request
    headers, response headers or WSGI variables (``{name}i/o/e``)."""
    # gunicorn matches {header}i-style keys in any case, the others exactly.
    keys = frozenset(
        key.lower() if key.startswith("{") else key
        for key in _FORMAT_KEY.findall(access_log_format)
    )
    return (
        keys,
        any(key.startswith("{") and key.endswith("}i") for key in keys),
        any(key.startswith("{") and key.endswith("}o") for key in keys),
        any(key.startswith("{") and key.endswith("}e") for key in keys),
    )


class RedactingLogger(Logger):
    """gunicorn's logger with instance uuids masked in every logged value."""

    def atoms(self, resp, req, environ, request_time) -> dict[str, Any]:
        """The access log's values that its format names, uuids masked (paths
        decoded first).

        gunicorn makes a value of every header and WSGI variable for each
        request; only those the format names are made here.
        """
        keys, request_headers, response_headers, variables = _named_in(
            self.cfg.access_log_format
        )
        if not variables:
            environ = {k: environ[k] for k in _ENVIRON_FOR_ATOMS if k in environ}
        if not request_headers:
            req = ()
        if not response_headers:
            resp = SimpleNamespace(
                status=resp.status, sent=getattr(resp, "sent", None), headers=()
            )
        atoms = super().atoms(resp, req, environ, request_time)
        named = {}
        for key in keys & atoms.keys():
            value = atoms[key]
            # Shorter than a uuid (most values: status, method, sizes): none
            # can hold one, encoded or not.
            if isinstance(value, str) and len(value) >= UUID_LENGTH:
                value = mask_uri(value)
            named[key] = value
        return named

    def log(self, lvl, msg, *args, **kwargs) -> None:
        # Every error-log level passes here or below: "Invalid request from
        # ..." and tracebacks may quote a request line.
        super().log(lvl, _masked(msg, args), **kwargs)

    def critical(self, msg, *args, **kwargs) -> None:
        super().critical(_masked(msg, args), **kwargs)

    def error(self, msg, *args, **kwargs) -> None:
        super().error(_masked(msg, args), **kwargs)

    def warning(self, msg, *args, **kwargs) -> None:
        super().warning(_masked(msg, args), **kwargs)

    def info(self, msg, *args, **kwargs) -> None:
        super().info(_masked(msg, args), **kwargs)

    def debug(self, msg, *args, **kwargs) -> None:
        super().debug(_masked(msg, args), **kwargs)

    def exception(self, msg, *args, **kwargs) -> None:
        super().exception(_masked(msg, args), **kwargs)


def _masked(msg: Any, args: tuple) -> str:
    try:
        text = str(msg) % args if args else str(msg)
    except (TypeError, ValueError):
        text = " ".join(map(str, (msg, *args)))
    return mask_uri(text)


DRAIN_MAX = 65536


def close_plainly(sock: socket.socket, *_args: Any, **_kwargs: Any) -> None:
    """Close a connection whose answer was sent, at once.

    gunicorn's own close half-closes, then waits up to two seconds for the
    client to close first, holding its worker (or its threads' event loop)
    meanwhile. Here the bytes the client already sent are read (so that the
    kernel does not reset the connection over the answer) and the socket is
    closed without waiting.
    """
    try:
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            return
        sock.setblocking(False)
        drained = 0
        while drained < DRAIN_MAX:
            try:
                data = sock.recv(DRAIN_MAX)
            except OSError:  # nothing more waiting, or the client has gone
                break
            if not data:
                break
            drained += len(data)
    finally:
        with contextlib.suppress(OSError):
            sock.close()

"""What ``gunicorn.conf.py`` plugs into gunicorn: an access and error log that
never shows an instance's uuid, and connections closed without waiting."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from gunicorn.glogging import Logger

from tracker.redaction import mask_uri

UUID_LENGTH = 36


class RedactingLogger(Logger):
    """gunicorn's logger with instance uuids masked in every logged value."""

    def atoms(self, resp, req, environ, request_time) -> dict[str, Any]:
        """The access log's values, uuids masked (paths decoded first)."""
        atoms = super().atoms(resp, req, environ, request_time)
        for key, value in atoms.items():
            # Shorter than a uuid (most values: status, method, sizes): none
            # can hold one, encoded or not.
            if isinstance(value, str) and len(value) >= UUID_LENGTH:
                atoms[key] = mask_uri(value)
        return atoms

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
